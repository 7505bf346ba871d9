package loopback

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strconv"
)

// Crafted tarballs, block by block, for the kinds Go's tar writer will not
// write (sparse entries, a file whose name ends in '/'): what a hostile
// registry or uid could plant.

// TarHeader is one header block: GNU magic (what cargo package writes) or
// POSIX ustar.
func TarHeader(name string, typ byte, size int64, gnu bool) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1153704088))
	b[156] = typ
	if gnu {
		copy(b[257:265], "ustar  \x00")
	} else {
		copy(b[257:265], "ustar\x0000")
	}
	return checksum(b)
}

func checksum(b []byte) []byte {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// GNUSparseHeader is an old-GNU 'S' entry: one 1-byte chunk at offset 0 of
// a file of real bytes.
func GNUSparseHeader(name string, real int64) []byte {
	b := TarHeader(name, 'S', 1, true)
	copy(b[386:398], fmt.Sprintf("%011o\x00", 0))
	copy(b[398:410], fmt.Sprintf("%011o\x00", 1))
	copy(b[483:495], fmt.Sprintf("%011o\x00", real))
	return checksum(b)
}

// PAXRecords encodes "key=value" records of a PAX extended header.
func PAXRecords(kv ...string) []byte {
	var out []byte
	for i := 0; i+1 < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec) + 1
		for len(rec)+len(strconv.Itoa(n)) != n {
			n++
		}
		out = append(out, strconv.Itoa(n)+rec...)
	}
	return out
}

// Pad fills body to whole 512-byte blocks.
func Pad(body []byte) []byte {
	if n := len(body) % 512; n != 0 {
		body = append(body, make([]byte, 512-n)...)
	}
	return body
}

// PAXSparseEntry is a PAX 1.0 sparse file: one data byte at offset 0 of a
// file of real bytes. cargo's reader writes the 513 raw bytes (map and
// data) under name; Go's expands them to real bytes under sparseName.
func PAXSparseEntry(name, sparseName string, real int64) []byte {
	pax := PAXRecords("GNU.sparse.major", "1", "GNU.sparse.minor", "0",
		"GNU.sparse.name", sparseName, "GNU.sparse.realsize", strconv.FormatInt(real, 10))
	data := append(Pad([]byte("1\n0\n1\n")), 'x')
	out := append(TarHeader(name+".pax", 'x', int64(len(pax)), false), Pad(pax)...)
	out = append(out, TarHeader(name, '0', int64(len(data)), false)...)
	return append(out, Pad(data)...)
}

// RegularEntry is a plain file entry with its body.
func RegularEntry(name, body string) []byte {
	return append(TarHeader(name, '0', int64(len(body)), true), Pad([]byte(body))...)
}

// Gzip joins blocks, ends the archive with two zero blocks and compresses.
func Gzip(blocks ...[]byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, b := range blocks {
		zw.Write(b)
	}
	zw.Write(make([]byte, 1024))
	zw.Close()
	return buf.Bytes()
}
