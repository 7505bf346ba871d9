// Package shim is one run of the drop-in cargo, and the registry operations
// it and the admin command share. The run of DESIGN.md, as functions:
//
//  1. Classify the command: Classify. Registry-free commands are exec'd at
//     once by Main.
//  2. Plan from Cargo.lock: Run.planSource (FindCargoLock; for cargo
//     install, install.go: the tool's version from the cached index and the
//     Cargo.lock packaged in its tarball), then Registry.loadPlan (the plan
//     record of a warm run) or Registry.buildPlan (ParseCargoLock,
//     Registry.Locate in every regdir).
//  3. Check every planned crate while the holder pins them: Run.checkPlan,
//     Registry.fastCheck against recorded stamps, Registry.fullCheck against
//     the tarball (ReadManifest) when something changed.
//  4. Repair the broken ones, one at a time, each under its exclusive lock
//     and with no download in progress: Run.repairOne -> Registry.RepairCrate
//     -> Registry.Quiesce -> Registry.Repair (reextract, trash).
//  5. Pin again and re-check after repairs: the loop in Run.Prepare.
//  6. Exec the real cargo, the holder keeping the shared locks: execCargo.
//
// Every change to a crate is one atomic rename under that crate's exclusive
// lock; that is what lets step 3 run while the locks are being taken.
package shim
