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

// BenchmarkParseCargoLockNested measures the hostile Cargo.lock: before the
// pre-scan BurntSushi/toml took tens of seconds and gigabytes on it.
func BenchmarkParseCargoLockNested(b *testing.B) {
	data := nestedLock(8000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ParseCargoLock(data, "Cargo.lock")
	}
}
