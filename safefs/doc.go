// Package safefs is the one way the store touches a shared registry: a
// directory held open by descriptor, and operations on paths relative to it
// that are resolved beneath it and follow no symlink anywhere.
//
// Why: the registry is writable by uids the shim must not trust (other
// runners, build scripts, proc macros). A path-based call such as
// os.Chmod(".../locks") follows whatever another uid renamed into place a
// microsecond earlier, so a root run could be made to create, chmod or
// delete anything on the host. Here every path is resolved with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS), or,
// on kernels without openat2, one openat(O_NOFOLLOW) per component from the
// held descriptor; mode and time changes go through descriptors of objects
// that were opened that way, never through a path.
//
// The registry path itself is trusted (it may be a symlink or a bind mount:
// the operator chose it); nothing below it is. A symlink below the root is
// an error (ELOOP or ENOTDIR), never followed, so a store that meets one
// skips that directory with a warning.
//
// What stays possible: a directory resolved beneath the root can be renamed
// by a uid that may write it between resolution and use; what the shim then
// creates or removes is inside that moved directory, whose content is the
// registry's own. A pre-existing object outside the registry is never
// reached: that would need a symlink (never followed) or a rename of a
// directory its owner did not let the attacker write.
package safefs
