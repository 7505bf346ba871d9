// Package shim is one run of the drop-in cargo: it classifies the command,
// asks the registry store (package store) to plan, check and repair, keeps
// the planned crates pinned through a lock holder, and execs the real cargo.
// The run, as functions:
//
//  1. Classify the command: Classify. Registry-free commands are exec'd at
//     once by Main.
//  2. Plan from Cargo.lock: Run.planSource (store.FindCargoLock; for cargo
//     install, install.go: the tool's version from the cached index and the
//     Cargo.lock packaged in its tarball), then Run.loadPlan ->
//     Registry.LoadPlan (the plan record of a warm run, or a plan built).
//  3. Check every planned crate while the holder pins them: Run.pinAndCheck
//     -> Registry.CheckPlan (recorded stamps; the tarball when something
//     changed).
//  4. Repair the broken ones, one at a time, each under its exclusive lock
//     and with no download in progress: Run.repairOne -> Registry.RepairCrate.
//  5. Pin again and re-check after repairs: Run.pinHealthy.
//  6. Exec the real cargo, the holder keeping the shared locks: execCargo.
//
// Every change to a crate is one atomic rename under that crate's exclusive
// lock; that is what lets step 3 run while the locks are being taken.
package shim
