// Package loopback serves a real sparse cargo registry on 127.0.0.1 from
// crates it builds in memory, for the tests, the demo and the benchmarks.
package loopback

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cargo-shim/cargo-shim/shim/store/storetest"
)

// CrateSpec describes a crate the test publishes to its loopback registry.
type CrateSpec struct {
	Name, Version string
	// Files relative to the crate root; Cargo.toml is generated when absent.
	Files map[string]string
	// Manifest lines appended to the generated [package] table.
	Extra string
	Deps  []string // "name = \"=1.0.0\"" lines
	Lib   string   // extra [lib] lines, e.g. `proc-macro = true`
	// Raw, when set, is served as the .crate instead of one built from
	// Files: a crafted tarball.
	Raw []byte
	// NoDirEntries leaves directory entries out, as `cargo package` does:
	// cargo then makes every directory with the process umask.
	NoDirEntries bool
	// Yanked is published as yanked in the index.
	Yanked bool
}

func (c CrateSpec) Dir() string { return c.Name + "-" + c.Version }

// Manifest is the Cargo.toml generated for a spec without one.
func (c CrateSpec) Manifest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[package]\nname = %q\nversion = %q\nedition = \"2021\"\n%s\n", c.Name, c.Version, c.Extra)
	if c.Lib != "" {
		fmt.Fprintf(&b, "[lib]\n%s\n", c.Lib)
	}
	if len(c.Deps) > 0 {
		b.WriteString("[dependencies]\n" + strings.Join(c.Deps, "\n") + "\n")
	}
	return b.String()
}

// Tarball builds the .crate: a gzipped tar whose entries all start with
// <name>-<version>/, with cargo package's fixed mtime.
func (c CrateSpec) Tarball() []byte {
	if c.Raw != nil {
		return c.Raw
	}
	files := map[string]string{}
	for k, v := range c.Files {
		files[k] = v
	}
	if _, ok := files["Cargo.toml"]; !ok {
		files["Cargo.toml"] = c.Manifest()
	}
	if c.NoDirEntries {
		return storetest.Packaged(c.Dir(), files)
	}
	return storetest.Files(c.Dir(), files)
}

// Registry is a sparse registry served on 127.0.0.1 by the test itself.
type Registry struct {
	URL string // sparse+http://127.0.0.1:PORT/

	mu        sync.Mutex
	index     map[string][]string // lowercase name -> JSON lines
	crates    map[string][]byte   // name-version -> .crate
	downloads map[string]int
	// dlDelay slows each .crate response down (mid-download kills).
	dlDelay time.Duration
	barrier *barrier
	srv     *http.Server
}

// NewRegistry listens on a free port of 127.0.0.1. Close stops it.
func NewRegistry() (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{
		URL:       fmt.Sprintf("sparse+http://%s/", ln.Addr()),
		index:     map[string][]string{},
		crates:    map[string][]byte{},
		downloads: map[string]int{},
	}
	r.srv = &http.Server{Handler: r}
	go r.srv.Serve(ln)
	return r, nil
}

// Close stops the server.
func (r *Registry) Close() error { return r.srv.Close() }

func (r *Registry) httpBase() string {
	return strings.TrimPrefix(r.URL, "sparse+")
}

// Publish adds a crate version; it returns the .crate's sha256.
func (r *Registry) Publish(c CrateSpec) string {
	tb := c.Tarball()
	sum := sha256.Sum256(tb)
	cksum := hex.EncodeToString(sum[:])
	deps := []map[string]any{}
	for _, d := range c.Deps {
		name, req, _ := strings.Cut(d, "=")
		deps = append(deps, map[string]any{
			"name": strings.TrimSpace(name), "req": strings.Trim(strings.TrimSpace(req), `"`),
			"features": []string{}, "optional": false, "default_features": true,
			"target": nil, "kind": "normal",
		})
	}
	line, _ := json.Marshal(map[string]any{
		"name": c.Name, "vers": c.Version, "deps": deps, "cksum": cksum,
		"features": map[string]any{}, "yanked": c.Yanked,
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	key := strings.ToLower(c.Name)
	r.index[key] = append(r.index[key], string(line))
	r.crates[c.Dir()] = tb
	return cksum
}

// Downloads returns how often each .crate was served.
func (r *Registry) Downloads() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.downloads {
		out[k] = v
	}
	return out
}

func (r *Registry) SetDownloadDelay(d time.Duration) {
	r.mu.Lock()
	r.dlDelay = d
	r.mu.Unlock()
}

// SetDownloadBarrier holds each .crate response until n requests for that
// crate have arrived, or timeout passed, then sends them together: K cold
// runners then unpack the same crate at the same moment, the race plain
// cargo loses. n == 0 turns it off.
func (r *Registry) SetDownloadBarrier(n int, timeout time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.barrier = nil
	if n > 0 {
		r.barrier = &barrier{n: n, timeout: timeout, arrived: map[string]int{}, open: map[string]chan struct{}{}}
	}
}

type barrier struct {
	n       int
	timeout time.Duration
	mu      sync.Mutex
	arrived map[string]int
	open    map[string]chan struct{}
}

func (b *barrier) wait(stem string) {
	b.mu.Lock()
	ch, ok := b.open[stem]
	if !ok {
		ch = make(chan struct{})
		b.open[stem] = ch
	}
	b.arrived[stem]++
	if b.arrived[stem] == b.n {
		close(ch)
	}
	b.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(b.timeout):
	}
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := strings.TrimPrefix(req.URL.Path, "/")
	if p == "config.json" {
		fmt.Fprintf(w, `{"dl": "%scrates/{crate}-{version}.crate"}`, r.httpBase())
		return
	}
	if stem, ok := strings.CutPrefix(p, "crates/"); ok {
		stem = strings.TrimSuffix(stem, ".crate")
		r.mu.Lock()
		tb, ok := r.crates[stem]
		if ok {
			r.downloads[stem]++
		}
		delay, b := r.dlDelay, r.barrier
		r.mu.Unlock()
		if !ok {
			http.NotFound(w, req)
			return
		}
		if b != nil {
			b.wait(stem)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(tb)))
		if delay > 0 {
			// Half now, half later: a kill in between leaves a partial file.
			w.Write(tb[:len(tb)/2])
			w.(http.Flusher).Flush()
			time.Sleep(delay)
			w.Write(tb[len(tb)/2:])
			return
		}
		w.Write(tb)
		return
	}
	name := p[strings.LastIndex(p, "/")+1:]
	r.mu.Lock()
	lines := r.index[name]
	r.mu.Unlock()
	if len(lines) == 0 || indexPath(name) != p {
		http.NotFound(w, req)
		return
	}
	fmt.Fprint(w, strings.Join(lines, "\n")+"\n")
}

// indexPath is the sparse index layout: 1/x, 2/xy, 3/x/xyz, ab/cd/abcd...
func indexPath(name string) string {
	switch len(name) {
	case 1:
		return "1/" + name
	case 2:
		return "2/" + name
	case 3:
		return "3/" + name[:1] + "/" + name
	}
	return name[:2] + "/" + name[2:4] + "/" + name
}
