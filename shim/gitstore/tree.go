package gitstore

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// entry is one path of a commit's tree (git ls-tree -r -l).
type entry struct {
	Mode string // 100644, 100755, 120000 or 160000 (a submodule)
	Oid  string
	Size int64 // -1 for a submodule
}

// tree lists commit's tree from the db: every path, its mode, object and
// size. An error means the db does not hold the commit with a readable
// tree.
func tree(ctx context.Context, db, commit string) (map[string]entry, error) {
	out, err := gitOut(ctx, "", "--git-dir="+db, "ls-tree", "-r", "-l", "-z", "--full-tree", commit+"^{commit}")
	if err != nil {
		return nil, err
	}
	t := map[string]entry{}
	for _, rec := range bytes.Split(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, path, ok := strings.Cut(string(rec), "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 4 || !validRel(path) {
			return nil, fmt.Errorf("unexpected ls-tree line %q", rec)
		}
		e := entry{Mode: f[0], Oid: f[2], Size: -1}
		if f[3] != "-" {
			if e.Size, err = strconv.ParseInt(f[3], 10, 64); err != nil {
				return nil, fmt.Errorf("unexpected ls-tree line %q", rec)
			}
		}
		t[path] = e
	}
	return t, nil
}

// validRel is a relative path with no empty, "." or ".." component: one the
// shim may join below a checkout.
func validRel(p string) bool {
	if p == "" || p[0] == '/' || strings.ContainsRune(p, 0) {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// submodule is a gitlink of a tree with what .gitmodules says of it.
type submodule struct {
	Path string
	Src  Source // URL resolved as cargo does, Commit = the gitlink
	Skip bool   // update = none: cargo leaves it empty
}

// submodules lists the gitlinks of t with their URLs from the commit's
// .gitmodules. A gitlink .gitmodules does not name is skipped, as cargo
// (libgit2) skips it. unnamed lists the gitlinks whose URL the shim cannot
// turn into a db (scp-like, or relative to a parent URL it does not know).
func submodules(ctx context.Context, db string, parent Source, t map[string]entry) (subs []submodule, unnamed []string, err error) {
	var links []string
	for p, e := range t {
		if e.Mode == "160000" {
			links = append(links, p)
		}
	}
	if _, ok := t[".gitmodules"]; !ok || len(links) == 0 {
		return nil, nil, nil
	}
	out, err := gitOut(ctx, "", "--git-dir="+db, "config", "-z", "--blob", parent.Commit+":.gitmodules", "--get-regexp", `^submodule\..*\.(path|url|update)$`)
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]map[string]string{}
	for _, rec := range bytes.Split(out, []byte{0}) {
		k, v, ok := strings.Cut(string(rec), "\n")
		if !ok {
			continue
		}
		name, key := k[len("submodule."):strings.LastIndexByte(k, '.')], k[strings.LastIndexByte(k, '.')+1:]
		if byName[name] == nil {
			byName[name] = map[string]string{}
		}
		byName[name][key] = v
	}
	for _, kv := range byName {
		p := kv["path"]
		e, ok := t[p]
		if !ok || e.Mode != "160000" || kv["url"] == "" {
			continue
		}
		s, ok := ParseSource(parent.Name+"/"+p, "git+"+absoluteSubmoduleURL(parent.URL, kv["url"])+"#"+e.Oid)
		switch {
		case kv["update"] == "none":
			subs = append(subs, submodule{Path: p, Skip: true})
		case !ok:
			unnamed = append(unnamed, p)
		default:
			subs = append(subs, submodule{Path: p, Src: s})
		}
	}
	return subs, unnamed, nil
}

// absoluteSubmoduleURL is cargo's absolute_submodule_url: "./" and "../"
// URLs are resolved against the parent's URL taken as a directory.
func absoluteSubmoduleURL(base, sub string) string {
	if !strings.HasPrefix(sub, "./") && !strings.HasPrefix(sub, "../") {
		return sub
	}
	if b, err := url.Parse(base); err == nil {
		if !strings.HasSuffix(b.Path, "/") {
			b.Path += "/"
		}
		if r, err := url.Parse(sub); err == nil {
			return b.ResolveReference(r).String()
		}
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + sub
}
