// Package store is the shared registry directory ($CARGO_HOME/registry) and
// everything cargo-shim reads or changes in it: the layout (Registry,
// Instance), Cargo.lock reading, plan and state records, checks of an
// extraction against its tarball, repair and trash, gc, and the sharing of
// cargo's package-cache lock. The drop-in's run (package shim) and the admin
// reports (package admin) reach the registry only through it.
//
// The rule it keeps: a crate changes only under its exclusive lock, by one
// atomic rename, after a check made under that lock found it broken; a
// check takes no lock and its callers decide what the result is worth by
// what they hold.
package store
