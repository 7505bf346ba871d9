// Package groupshare makes a shared cargo registry writable by every uid of
// one group: root CI containers and non-root host runners that must repair,
// re-extract and garbage-collect what each other created.
//
// A registry is group-shared when three things agree: the mark file
// registry/.cargo-shim/group names a gid, the registry directory itself has
// that group, and it has the setgid bit. Only root or the registry's owner
// can set the last two, so a uid that can merely write into .cargo-shim
// cannot turn the mode on by writing the mark.
//
// On such a registry:
//   - directories are group-writable and setgid, so what anyone creates in
//     them, root included, gets the registry's group (new directories
//     inherit setgid);
//   - every run through the shim clears the group bits of its umask before
//     it repairs and before it execs cargo, because cargo creates
//     extraction directories, .crate files, markers and index cache files
//     with the process umask (0022 leaves them writable by their owner only);
//   - Init (`cargo-shim init --group`) sets up a registry, empty or in use,
//     and Audit lists what the group still cannot write.
//
// Every walk goes through directory descriptors opened with O_NOFOLLOW and
// changes what it opened (fchown, fchmod), never a path: a uid that plants
// symlinks in the registry cannot make root chown or chmod anything else.
package groupshare
