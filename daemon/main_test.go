package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// binDir holds the example node binaries built by TestMain.
var binDir string

// childDaemonEnv, when set in the environment, makes the test binary run a daemon
// (configured by the JSON value) instead of the tests: a daemon in its own process that a
// test can kill -9.
const childDaemonEnv = "DORACTL_TEST_CHILD_DAEMON"

type childConfig struct {
	Name, Coordinator, StateDir string
}

func TestMain(m *testing.M) {
	if v := os.Getenv(childDaemonEnv); v != "" {
		os.Exit(runChildDaemon(v))
	}
	dir, err := os.MkdirTemp("", "doractl-daemon-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./examples/rust-dataflow/node",
		"./examples/rust-dataflow/status-node",
		"./examples/rust-dataflow/sink",
		"./examples/rust-dataflow/sink-dynamic",
		"./examples/stubborn/ignore-stop",
		"./examples/stubborn/exit-code",
	)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building example nodes: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func runChildDaemon(v string) int {
	var c childConfig
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintln(os.Stderr, "child daemon config:", err)
		return 2
	}
	cfg := DefaultConfig()
	cfg.Name, cfg.Machine = c.Name, "child"
	cfg.CoordinatorAddr = c.Coordinator
	cfg.StateDir = c.StateDir
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.NodeListenAddr = ""
	cfg.Gossip = false
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "child-daemon", Level: hclog.Warn})
	if err := Run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child daemon:", err)
		return 1
	}
	return 0
}

// bin is the path of an example node binary.
func bin(name string) string { return filepath.Join(binDir, name) }
