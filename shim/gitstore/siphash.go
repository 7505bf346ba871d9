package gitstore

import (
	"encoding/binary"
	"encoding/hex"
	"math/bits"
)

// shortHash is cargo's util::short_hash of a string (cargo >= 1.85): a
// SipHash-1-3 with 128-bit output and zero keys over the string's bytes and
// Rust's str terminator 0xff, folded to a u64 as h1*3+h2 (rustc-stable-hash)
// and printed as little-endian hex.
func shortHash(s string) string {
	h1, h2 := sip13x128(append([]byte(s), 0xff))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], h1*3+h2)
	return hex.EncodeToString(b[:])
}

// sip13x128 is SipHash-1-3 with a 128-bit output and the keys (0, 0).
func sip13x128(m []byte) (uint64, uint64) {
	v0 := uint64(0x736f6d6570736575)
	v1 := uint64(0x646f72616e646f6d) ^ 0xee
	v2 := uint64(0x6c7967656e657261)
	v3 := uint64(0x7465646279746573)
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(m)
	for len(m) >= 8 {
		w := binary.LittleEndian.Uint64(m)
		v3 ^= w
		round()
		v0 ^= w
		m = m[8:]
	}
	last := uint64(n) << 56
	for i, c := range m {
		last |= uint64(c) << (8 * i)
	}
	v3 ^= last
	round()
	v0 ^= last
	v2 ^= 0xee
	round()
	round()
	round()
	h1 := v0 ^ v1 ^ v2 ^ v3
	v1 ^= 0xdd
	round()
	round()
	round()
	h2 := v0 ^ v1 ^ v2 ^ v3
	return h1, h2
}
