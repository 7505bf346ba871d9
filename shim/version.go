package shim

// Version is set at build time with -ldflags "-X .../shim.Version=...".
var Version = "0.1.0-dev"
