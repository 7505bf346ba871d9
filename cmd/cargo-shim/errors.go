//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/cargo-shim/cargo-shim/shim"
	"github.com/cargo-shim/cargo-shim/shim/store/groupshare"
)

// printError writes err as cargo does: "error: what failed", then, after a
// blank line, "Caused by:" and each underlying cause indented. Errors
// gathered with go-multierror print one such block each.
func printError(log *shim.Logger, err error) {
	var me *multierror.Error
	if errors.As(err, &me) && len(me.Errors) > 0 {
		for _, e := range me.Errors {
			printError(log, e)
		}
		return
	}
	msgs := chain(err)
	log.Error("%s", msgs[0])
	if len(msgs) > 1 {
		fmt.Fprint(log.W, "\nCaused by:\n")
		for _, m := range msgs[1:] {
			fmt.Fprintf(log.W, "  %s\n", m)
		}
	}
}

// printFix follows the errors of a command that changes the registry: when
// one was a permission failure, the fix for this uid (once).
func printFix(log *shim.Logger, root string, err error) {
	if h := groupshare.Hint(root, err); h != "" {
		log.Help("permission denied: %s", h)
	}
}

// chain splits "a: b: c" built with %w into its levels, outermost first,
// and words Go's context errors for people.
func chain(err error) []string {
	var out []string
	for err != nil {
		next := errors.Unwrap(err)
		msg := err.Error()
		if next != nil {
			inner, ok := strings.CutSuffix(msg, ": "+next.Error())
			if !ok {
				next = nil // not a prefix chain: keep the message whole
			} else {
				msg = inner
			}
		}
		switch {
		case err == context.DeadlineExceeded:
			msg = "timed out waiting for a lock (CARGO_SHIM_LOCK_TIMEOUT sets how long; 0 waits forever)"
		case err == context.Canceled:
			msg = "interrupted"
		}
		if msg != "" {
			out = append(out, msg)
		}
		err = next
	}
	if len(out) == 0 {
		out = []string{"unknown error"}
	}
	return out
}
