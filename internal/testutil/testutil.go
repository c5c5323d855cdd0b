// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// CheckFor polls f every interval until it returns nil, and fails the test with f's last
// error when timeout passes first. Tests wait for conditions this way, never with a fixed
// sleep.
func CheckFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// Logger is silent unless DORACTL_TEST_LOG names a level (trace, debug, info, ...).
func Logger(name string) hclog.Logger {
	lvl := os.Getenv("DORACTL_TEST_LOG")
	if lvl == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(lvl)})
}
