package store

import (
	"strings"
	"testing"
)

// nestedLock is the 32 KB Cargo.lock of the report: one package whose extra
// key holds n inline tables nested in each other.
func nestedLock(n int) []byte {
	return []byte("version = 3\n[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nx = " +
		strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n) + "\n")
}

// BenchmarkParseCargoLockNested measures the hostile Cargo.lock: through
// BurntSushi/toml it took tens of seconds and gigabytes.
func BenchmarkParseCargoLockNested(b *testing.B) {
	data := nestedLock(8000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ParseCargoLock(data, "Cargo.lock")
	}
}

// hostileAtCap are shapes that were slow in a TOML parser, plus real
// packages, each filled to the size cap: what a hostile Cargo.lock can
// cost at most, reported by BenchmarkParseCargoLockAtCap.
func hostileAtCap() map[string][]byte {
	fill := func(unit string) []byte {
		return []byte(strings.Repeat(unit, (maxLockSize-1)/len(unit)))
	}
	deep := strings.Repeat("[", 15) + strings.Repeat("]", 15)
	pkg := "[[package]]\nname = \"fnv\"\nversion = \"1.0.7\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"" + strings.Repeat("a", 64) + "\"\ndependencies = [\n \"a\",\n \"b 1.0.0\",\n]\n\n"
	return map[string][]byte{
		"packages":      fill(pkg),
		"array tables":  fill("[[a]]\n"),
		"nested arrays": append([]byte("x = ["), append(fill(deep+","), ']')...),
		"dotted keys":   fill("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p = 1\n"),
		"inline tables": append([]byte("x = ["), append(fill(strings.Repeat("{a=", 7)+"1"+strings.Repeat("}", 7)+","), ']')...),
	}
}

func BenchmarkParseCargoLockAtCap(b *testing.B) {
	for name, data := range hostileAtCap() {
		b.Run(strings.ReplaceAll(name, " ", "-"), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ParseCargoLock(data, "Cargo.lock")
			}
		})
	}
}
