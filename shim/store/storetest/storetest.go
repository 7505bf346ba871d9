// Package storetest builds .crate tarballs and registry-shaped crates for
// tests and benchmarks: the one copy of each, shared by the store's tests,
// the loopback registry and the bench command.
package storetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Mtime is the mtime cargo package gives every entry.
var Mtime = time.Unix(1153704088, 0)

// Entry is one tar entry; Type 0 is a regular file, Mode 0 is 0o644.
type Entry struct {
	Name     string
	Type     byte
	Body     string
	Mode     int64
	Linkname string
}

// Tarball is the gzipped tar of entries, in the order given.
func Tarball(entries []Entry) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Linkname: e.Linkname, ModTime: Mtime}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		tw.WriteHeader(hdr)
		tw.Write([]byte(e.Body))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// Files is the .crate of files (paths relative to stem/, "<name>-<version>"),
// sorted, each directory entry before the first file in it.
func Files(stem string, files map[string]string) []byte {
	return Tarball(fileEntries(stem, files, true))
}

// Packaged is Files as `cargo package` writes it: without directory entries,
// so that cargo makes every directory itself, with the process umask.
func Packaged(stem string, files map[string]string) []byte {
	return Tarball(fileEntries(stem, files, false))
}

func fileEntries(stem string, files map[string]string, withDirs bool) []Entry {
	names := make([]string, 0, len(files))
	for k := range files {
		names = append(names, k)
	}
	sort.Strings(names)
	var entries []Entry
	dirs := map[string]bool{}
	for _, n := range names {
		parts := strings.Split(n, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/")
			if !dirs[d] && withDirs {
				dirs[d] = true
				entries = append(entries, Entry{Name: stem + "/" + d + "/", Type: tar.TypeDir, Mode: 0o755})
			}
		}
		entries = append(entries, Entry{Name: stem + "/" + n, Body: files[n]})
	}
	return entries
}

// Shaped is the files of generated crate k, shaped like a real registry's:
// 10-59 files in up to seven directories, so that 400 crates give about
// 13,700 files in 2,800 directories.
func Shaped(name string, k int) map[string]string {
	dirs := []string{"src", "src/a", "src/a/b", "src/c", "tests", "benches", "examples"}
	body := strings.Repeat("// generated\npub fn f() -> u32 { 1 }\n", 40)
	files := map[string]string{"Cargo.toml": fmt.Sprintf("[package]\nname = %q\nversion = \"1.0.0\"\n", name)}
	nfiles, ndirs := 10+(k*7919)%50, 1+(k*31)%len(dirs)
	for f := 0; f < nfiles-1; f++ {
		files[fmt.Sprintf("%s/f%02d.rs", dirs[f%ndirs], f)] = body[:200+(f*37)%(len(body)-200)]
	}
	return files
}
