package main

import (
	"os"
	"strings"
	"testing"
)

// The README's runner-image Dockerfile is the repository's, byte for byte:
// what users copy is what `docker build .` builds.
func TestREADMEDockerfileIsTheRepos(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```dockerfile\n"+string(docker)+"```\n") {
		t.Fatal("README's Dockerfile differs from ./Dockerfile")
	}
}
