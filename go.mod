module github.com/cargo-shim/cargo-shim

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/gofrs/flock v0.13.2
	golang.org/x/sys v0.50.0
)
