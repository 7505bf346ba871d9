package gitstore

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"strings"
	"syscall"
	"time"
)

// A checkout verified in full is recorded with the stamps (inode, size,
// mtime, ctime) of every file and directory in it, its .cargo-ok and what
// names its HEAD; the next run trusts the checkout when every stamp still
// matches, without running git. What that cannot see (a file rewritten in
// place within one clock tick, with its size kept) is what the deep level
// (CARGO_SHIM_VERIFY=files, cargo-shim verify --deep) is for.

const stampHeader = "cargo-shim-git-state 1"

// racyWindow: stamps younger than this before the record are not trusted (a
// change in the same clock tick would leave them as recorded).
const racyWindow = 50 * time.Millisecond

// maxStampRecord bounds what is read of a record.
const maxStampRecord = 64 << 20

// stampLines lists "ino size mtime ctime rel" for everything under co the
// fast check compares, sorted by the walk.
func stampLines(co string) ([]string, int64, error) {
	var lines []string
	var newest int64
	add := func(path string) error {
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(co, path)
		if strings.ContainsAny(rel, "\n") {
			return fmt.Errorf("%q: newline in a name", path)
		}
		newest = max(newest, st.Mtim.Nano(), st.Ctim.Nano())
		lines = append(lines, fmt.Sprintf("%d %d %d %d %s", st.Ino, st.Size, st.Mtim.Nano(), st.Ctim.Nano(), rel))
		return nil
	}
	err := filepath.WalkDir(co, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			// What HEAD resolves through; not the object store.
			for _, p := range []string{"HEAD", "packed-refs", "refs/heads", "refs/heads/master"} {
				if _, err := os.Lstat(filepath.Join(path, p)); err == nil {
					if err := add(filepath.Join(path, p)); err != nil {
						return err
					}
				}
			}
			return filepath.SkipDir
		}
		return add(path)
	})
	return lines, newest, err
}

// recordStamps writes s's record after a full check found co healthy.
func (g Store) recordStamps(s Source, co string) error {
	now := time.Now().UnixNano()
	lines, newest, err := stampLines(co)
	if err != nil {
		return err
	}
	if newest > now-racyWindow.Nanoseconds() {
		return nil // too fresh to vouch for; the next run records it
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%s\n%s\n", stampHeader, s.Commit, co)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return g.writeState(s.Ident, s.Commit, b.Bytes())
}

// stampsMatch reports whether s's trusted record describes co exactly as it
// is now.
func (g Store) stampsMatch(s Source, co string) bool {
	p := g.StatePath(s)
	if !g.trusted(p) {
		return false
	}
	data, err := readSmall(p)
	if err != nil {
		return false
	}
	want := fmt.Sprintf("%s\n%s\n%s\n", stampHeader, s.Commit, co)
	if !bytes.HasPrefix(data, []byte(want)) {
		return false
	}
	lines, _, err := stampLines(co)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(data[len(want):]))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		if n >= len(lines) || sc.Text() != lines[n] {
			return false
		}
		n++
	}
	return sc.Err() == nil && n == len(lines)
}

// ForgetStamps removes s's record (before a repair changes the checkout).
// It is unlinked beneath git/'s descriptor; no symlink is followed.
func (g Store) ForgetStamps(s Source) {
	root, err := g.root()
	if err != nil {
		return
	}
	defer root.Close()
	_ = root.Remove(filepath.Join(".cargo-shim", "state", s.Ident, s.Commit))
}

func readSmall(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(&limited{f, maxStampRecord})
	return b.Bytes(), err
}

type limited struct {
	f *os.File
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("record larger than %d bytes", maxStampRecord)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// trusted is the registry's rule for records: a regular file owned by this
// uid or root, in directories from git/.cargo-shim down owned by one of
// them and not writable by others without the sticky bit. Another uid's
// record could hide damage; it is not read.
func (g Store) trusted(p string) bool {
	rel, err := filepath.Rel(g.ShimDir(), p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return false
	}
	euid := uint32(os.Geteuid())
	cur := g.ShimDir()
	parts := append([]string{""}, strings.Split(rel, "/")...)
	for k, part := range parts {
		cur = filepath.Join(cur, part)
		var st syscall.Stat_t
		if syscall.Lstat(cur, &st) != nil || st.Uid != 0 && st.Uid != euid {
			return false
		}
		want := uint32(syscall.S_IFDIR)
		if k == len(parts)-1 {
			want = syscall.S_IFREG
		}
		if st.Mode&syscall.S_IFMT != want || want == syscall.S_IFDIR && st.Mode&0o022 != 0 && st.Mode&syscall.S_ISVTX == 0 {
			return false
		}
	}
	return true
}
