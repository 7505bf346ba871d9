package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cargo-shim/cargo-shim/shim/admin"
	"github.com/cargo-shim/cargo-shim/shim/store/groupshare"
)

func initCmd(args []string) error {
	c := newCommon("init", "init --group GROUP [--registry DIR] [--json]")
	group := c.fs.String("group", "", "the group whose uids share the registry: a name, or a numeric gid (required)")
	reg, _, err := c.parse(args)
	if err != nil {
		return err
	}
	if *group == "" {
		return usageError{errors.New("--group is required (a group name or a numeric gid)")}
	}
	gid, err := groupshare.ResolveGroup(*group)
	if err != nil {
		return usageError{err}
	}
	if err := os.MkdirAll(reg.Root, 0o755); err != nil {
		return err
	}
	rep, err := groupshare.Init(reg.Root, gid)
	if c.json {
		admin.WriteJSON(os.Stdout, rep)
	} else if !errors.Is(err, groupshare.ErrNotAllowed) {
		fmt.Printf("registry %s is group-shared by %s (gid %d): %d directories and %d files looked at, %d changed\n",
			rep.Registry, rep.Group, rep.Gid, rep.Dirs, rep.Files, rep.Changed)
	}
	if err != nil && rep.FailedCount > 0 {
		for _, f := range rep.Failed {
			c.log.Warn("not changed: %s", f)
		}
		return fmt.Errorf("%w (%d entries left as they were)", errProblems, rep.FailedCount)
	}
	return err
}
