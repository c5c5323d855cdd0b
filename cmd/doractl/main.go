// Command doractl runs and controls doractl dataflows: the coordinator, the per-machine
// daemons, and the user commands (up, start, stop, list, logs, destroy).
package main

import (
	"errors"
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "Error:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, errorLines(err))
		os.Exit(1)
	}
}

// exitError carries a specific exit status; msg may be empty when the command already
// printed its own explanation.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
