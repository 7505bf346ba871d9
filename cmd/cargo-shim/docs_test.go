//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"go.yaml.in/yaml/v3"
)

const repoRoot = "../.."

// docFiles are the documents whose commands and links must stay true.
func docFiles(t *testing.T) []string {
	files := []string{"README.md", "CONTRIBUTING.md"}
	more, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(more) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	for _, m := range more {
		rel, _ := filepath.Rel(repoRoot, m)
		files = append(files, rel)
	}
	return files
}

func readRepo(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	fenceRe   = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```\n")
	inlineRe  = regexp.MustCompile("`([^`\n]+)`")
	linkRe    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRe = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	commentRe = regexp.MustCompile(`(?s)<!--.*?-->`)
)

// code is every fenced block and inline code span of a document: where
// commands are given.
func code(doc string) []string {
	var out []string
	for _, m := range fenceRe.FindAllStringSubmatch(doc, -1) {
		out = append(out, m[2])
	}
	prose := fenceRe.ReplaceAllString(doc, "")
	for _, m := range inlineRe.FindAllStringSubmatch(prose, -1) {
		out = append(out, m[1])
	}
	return out
}

// Rule: every relative link in the README, CONTRIBUTING.md and docs/*.md
// names a file of the repository, and every #anchor a heading of it: a
// newcomer who follows one never lands on nothing.
func TestDocLinksResolve(t *testing.T) {
	for _, f := range docFiles(t) {
		doc := commentRe.ReplaceAllString(readRepo(t, f), "")
		doc = fenceRe.ReplaceAllString(doc, "")
		for _, m := range linkRe.FindAllStringSubmatch(doc, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			file := f
			if path != "" {
				file = filepath.Join(filepath.Dir(f), path)
				if _, err := os.Stat(filepath.Join(repoRoot, file)); err != nil {
					t.Errorf("%s: link %s: %v", f, target, err)
					continue
				}
			}
			if anchor != "" && !hasAnchor(t, file, anchor) {
				t.Errorf("%s: link %s: no heading %q in %s", f, target, anchor, file)
			}
		}
	}
}

// hasAnchor says whether file has a heading whose GitHub anchor is anchor.
func hasAnchor(t *testing.T, file, anchor string) bool {
	for _, m := range headingRe.FindAllStringSubmatch(fenceRe.ReplaceAllString(readRepo(t, file), ""), -1) {
		if slug(m[1]) == anchor {
			return true
		}
	}
	return false
}

func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

var (
	makeRe      = regexp.MustCompile(`(?m)(?:^|[\s$(])make ([a-z][a-z0-9-]*)`)
	targetRe    = regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)
	cargoShimRe = regexp.MustCompile(`(?m)(?:^|[\s(])cargo-shim ([^|;&#\n]*)`)
	commentLine = regexp.MustCompile(`(?m)^\s*#.*$`)
)

// Rule: every `make TARGET` the documents (and contrib/) give is a target
// of the Makefile, and every `cargo-shim SUBCOMMAND --flag` a subcommand
// with that flag: a command copied from the docs runs.
func TestDocCommandsExist(t *testing.T) {
	targets := map[string]bool{}
	for _, m := range targetRe.FindAllStringSubmatch(readRepo(t, "Makefile"), -1) {
		targets[m[1]] = true
	}
	texts := map[string][]string{}
	for _, f := range docFiles(t) {
		texts[f] = code(commentRe.ReplaceAllString(readRepo(t, f), ""))
	}
	for _, f := range contribFiles(t) {
		texts[f] = []string{readRepo(t, f)}
	}
	checked := 0
	for f, blocks := range texts {
		for _, c := range blocks {
			for _, m := range makeRe.FindAllStringSubmatch(c, -1) {
				if !targets[m[1]] {
					t.Errorf("%s: `make %s`: no such Makefile target", f, m[1])
				}
			}
			for _, m := range cargoShimRe.FindAllStringSubmatch(commentLine.ReplaceAllString(c, ""), -1) {
				checked++
				if err := checkCommandLine(strings.Fields(m[1])); err != "" {
					t.Errorf("%s: `cargo-shim %s`: %s", f, strings.TrimSpace(m[1]), err)
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d cargo-shim command lines found: the scanner is broken", checked)
	}
}

func contribFiles(t *testing.T) []string {
	var out []string
	filepath.WalkDir(filepath.Join(repoRoot, "contrib"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(repoRoot, p)
			out = append(out, rel)
		}
		return nil
	})
	if len(out) == 0 {
		t.Fatal("no files under contrib/")
	}
	return out
}

// checkCommandLine says what is wrong with `cargo-shim args...`, or "".
func checkCommandLine(args []string) string {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") || !regexp.MustCompile(`^[a-z]+$`).MatchString(args[0]) {
		return "" // `cargo-shim --version`, `cargo-shim`'s own name in prose
	}
	name := args[0]
	if name == "help" {
		if len(args) > 1 && args[1] != "help" && commands[args[1]] == nil && strings.ToLower(args[1]) == args[1] && !strings.HasPrefix(args[1], "<") {
			return "no such command to help with: " + args[1]
		}
		return ""
	}
	c := commands[name]
	if c == nil {
		return "no such command: " + name
	}
	fs := c.flagSet().fs
	for _, a := range args[1:] {
		flagName, _, _ := strings.Cut(strings.Trim(a, "[]"), "=")
		switch {
		case strings.HasPrefix(flagName, "--"):
			if fs.Lookup(strings.TrimPrefix(flagName, "--")) == nil {
				return "no flag " + flagName
			}
		case strings.HasPrefix(flagName, "-") && len(flagName) == 2:
			if fs.ShorthandLookup(flagName[1:]) == nil {
				return "no flag " + flagName
			}
		}
	}
	return ""
}

// Rule: the README's set-up is `make demo` then `make test`, its first
// commands, and CI (.ci/run) runs exactly those: the README's first screen
// is what CI proves.
func TestREADMESetUpIsWhatCIRuns(t *testing.T) {
	readme := readRepo(t, "README.md")
	first := fenceRe.FindStringSubmatchIndex(readme)
	if first == nil {
		t.Fatal("README has no code block")
	}
	blocks := fenceRe.FindAllStringSubmatch(readme, -1)
	// The first block is the errors people search for; the second the set-up.
	setup := blocks[1][2]
	lines := strings.Split(strings.TrimSpace(setup), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "make demo ") || !strings.HasPrefix(lines[1], "make test ") {
		t.Fatalf("README's set-up block is not `make demo` then `make test`:\n%s", setup)
	}
	if n := strings.Count(readme[:strings.Index(readme, setup)], "\n"); n > 40 {
		t.Errorf("the set-up commands start at line %d; keep them on the first screen", n)
	}
	ci := readRepo(t, ".ci/run")
	if !regexp.MustCompile(`(?m)^make demo\nmake test$`).MatchString(ci) {
		t.Errorf(".ci/run does not run `make demo` then `make test`:\n%s", ci)
	}
	if n := strings.Count(readme, "\n"); n > 260 {
		t.Errorf("README.md has %d lines; keep it under about 250 and move detail to docs/", n)
	}
}

// Rule: every YAML and TOML recipe in the docs parses: a snippet pasted
// into a workflow or config.toml is at least well-formed.
func TestDocRecipesParse(t *testing.T) {
	n := 0
	for _, f := range docFiles(t) {
		for _, m := range fenceRe.FindAllStringSubmatch(readRepo(t, f), -1) {
			var v any
			switch m[1] {
			case "yaml", "yml":
				n++
				if err := yaml.Unmarshal([]byte(m[2]), &v); err != nil {
					t.Errorf("%s: YAML recipe does not parse: %v\n%s", f, err, m[2])
				}
			case "toml":
				n++
				if _, err := toml.Decode(m[2], &v); err != nil {
					t.Errorf("%s: TOML recipe does not parse: %v\n%s", f, err, m[2])
				}
			}
		}
	}
	if n < 3 {
		t.Fatalf("only %d YAML/TOML recipes found", n)
	}
}

// Rule: the Dockerfile's Go image is the Go version go.mod asks for (an
// older one refuses the module under GOTOOLCHAIN=local), and its final RUN
// line passes with the drop-in first on PATH, as the image runs it.
func TestDockerfileMatchesGoModAndRuns(t *testing.T) {
	docker := readRepo(t, "Dockerfile")
	goVer := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readRepo(t, "go.mod"))
	from := regexp.MustCompile(`(?m)^FROM golang:(\S+)`).FindStringSubmatch(docker)
	if goVer == nil || from == nil || from[1] != goVer[1] {
		t.Fatalf("Dockerfile's golang image %v is not go.mod's go %v", from, goVer)
	}
	runs := regexp.MustCompile(`(?m)^RUN (.+)$`).FindAllStringSubmatch(docker, -1)
	last := runs[len(runs)-1][1]
	dir := t.TempDir()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, b := range [][2]string{{"lib/cargo-shim/bin/cargo", "./cmd/cargo"}, {"bin/cargo-shim", "./cmd/cargo-shim"}} {
		cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, b[0]), b[1])
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	cmd := exec.Command("sh", "-c", last)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(dir, "lib/cargo-shim/bin")+":"+os.Getenv("PATH")+":"+filepath.Join(dir, "bin"))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("cargo-shim 0.")) {
		t.Fatalf("Dockerfile's `RUN %s`: %v\n%s", last, err, out)
	}
}
