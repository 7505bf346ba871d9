package store

import (
	"testing"
	"time"
)

func TestLeftoverNamesRoundTrip(t *testing.T) {
	at := time.Unix(0, 1764253000123456789)
	for _, l := range []leftover{
		{kind: repairTemp, stem: "fnv-1.0.7", pid: 4242},
		{kind: repairTemp, stem: "a-b-0.2.0-alpha.1", pid: 7, old: true},
		{kind: setAside, stem: "windows-sys-0.59.0", pid: 1, at: at},
		{kind: trashed, stem: "127.0.0.1-55602b194b605e39.x-1.0.0+build.5", pid: 99, at: at},
	} {
		name := l.String()
		got, ok := parseLeftover(name)
		if !ok || got.kind != l.kind || got.stem != l.stem || got.pid != l.pid || got.old != l.old || !got.at.Equal(l.at) {
			t.Errorf("%+v -> %q -> %+v ok=%v", l, name, got, ok)
		}
	}
}

func TestLeftoverNamesRefuseOthers(t *testing.T) {
	for _, name := range []string{
		"fnv-1.0.7", "not-ours", ".cargo-shim-tmp-fnv-1.0.7", ".cargo-shim-tmp-fnv-1.0.7-12x",
		".cargo-shim-trash-fnv.12", ".cargo-shim-tmp--12", "r.fnv-1.0.7.-1.2",
	} {
		if l, ok := parseLeftover(name); ok {
			t.Errorf("%q parsed as %+v", name, l)
		}
	}
}
