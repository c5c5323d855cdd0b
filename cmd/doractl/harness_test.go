package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doractl/doractl/internal/procfs"
	"github.com/doractl/doractl/internal/testutil"
	"github.com/doractl/doractl/proto"
)

// binDir holds doractl and the example nodes, built once for the package's tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "doractl-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binDir = dir
	code := func() int {
		if err := buildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			return 2
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildBinaries(dir string) error {
	builds := map[string]string{
		"doractl":           ".",
		"rust-node":         "../../examples/rust-dataflow/node",
		"rust-status-node":  "../../examples/rust-dataflow/status-node",
		"rust-sink":         "../../examples/rust-dataflow/sink",
		"rust-sink-dynamic": "../../examples/rust-dataflow/sink-dynamic",
		"stubborn":          "../../examples/stubborn/ignore-stop",
		"exit-code":         "../../examples/stubborn/exit-code",
		"busy":              "../../examples/stubborn/busy",
	}
	for name, pkg := range builds {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// env is one isolated local cluster: its own ports, state folder and CLI environment.
type env struct {
	t        *testing.T
	dir      string
	ctrl     string
	upArgs   []string
	nodePort int
	extraEnv []string // more environment for every command (e.g. DORACTL_CLUSTER_KEY)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.ctrl = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.nodePort = freePort(t)
	e.upArgs = []string{"up", "--profile", "local",
		"--daemon-port", strconv.Itoa(freePort(t)),
		"--gossip-port", strconv.Itoa(freePort(t)),
		"--node-port", strconv.Itoa(e.nodePort)}
	t.Cleanup(e.cleanup)
	return e
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs the real doractl binary with this cluster's environment.
func (e *env) run(args ...string) result {
	e.t.Helper()
	r, err := e.exec(args...)
	if err != nil {
		e.t.Fatalf("doractl %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// exec is run without failing the test: safe from any goroutine.
func (e *env) exec(args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "doractl"), args...)
	cmd.Env = e.cliEnv()
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
		err = nil
	}
	return r, err
}

func (e *env) stateDir() string { return filepath.Join(e.dir, "state") }

// cliEnv is the environment of a doractl command against e's cluster.
func (e *env) cliEnv() []string {
	return append(append(os.Environ(),
		"DORACTL_STATE_DIR="+e.stateDir(),
		"DORA_COORDINATOR_ADDR="+e.ctrl,
		"DORACTL_DAEMON_ADDR="+fmt.Sprintf("127.0.0.1:%d", e.nodePort),
	), e.extraEnv...)
}

func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("doractl %s: %s", strings.Join(args, " "), r)
	}
	return r
}

func (e *env) up(extra ...string) {
	e.t.Helper()
	e.mustRun(append(append([]string{}, e.upArgs...), extra...)...)
}

func (e *env) jsonOut(v any, args ...string) {
	e.t.Helper()
	r := e.mustRun(args...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		e.t.Fatalf("doractl %s: bad JSON: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

func (e *env) members() []proto.Member {
	var ms []proto.Member
	e.jsonOut(&ms, "members", "-o", "json")
	return ms
}

func (e *env) dataflows() []proto.Dataflow {
	var dfs []proto.Dataflow
	e.jsonOut(&dfs, "list", "-o", "json")
	return dfs
}

func (e *env) dataflow(ref string) proto.Dataflow {
	e.t.Helper()
	for _, d := range e.dataflows() {
		if d.ID == ref || d.Name == ref {
			return d
		}
	}
	e.t.Fatalf("dataflow %s not listed", ref)
	return proto.Dataflow{}
}

// writeDataflow writes a descriptor into the env's folder, with node paths pointing at
// the built binaries.
func (e *env) writeDataflow(name, yaml string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	yaml = strings.ReplaceAll(yaml, "BIN/", binDir+"/")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// processes lists running processes whose command line mentions dir, as "PID: CMDLINE".
func processes(dir string) []string {
	var out []string
	for _, pid := range procfs.Find(func(pid int) bool { return strings.Contains(procfs.Cmdline(pid), dir) }) {
		out = append(out, fmt.Sprintf("%d: %s", pid, procfs.Cmdline(pid)))
	}
	return out
}

// cleanup kills whatever a failed test left behind, so one failure does not leak into
// the next test.
func (e *env) cleanup() {
	if e.t.Failed() {
		e.dumpLogs()
	}
	for _, p := range append(processes(e.dir), processesOfEnv(e.dir)...) {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesOfEnv lists processes whose environment names the env's state folder (the
// cluster started by `up`, and the nodes it spawned, which inherit the environment).
func processesOfEnv(dir string) []string {
	var out []string
	for _, pid := range procfs.Find(func(pid int) bool { return strings.Contains(strings.Join(procfs.Environ(pid), "\x00"), dir) }) {
		out = append(out, strconv.Itoa(pid))
	}
	return out
}

// waitNothingLeft waits until no process of the env runs (after a destroy).
func (e *env) waitNothingLeft() {
	e.t.Helper()
	testutil.CheckFor(e.t, 10*time.Second, 100*time.Millisecond, func() error {
		if ps := append(processes(e.dir), processesOfEnv(e.dir)...); len(ps) > 0 {
			return fmt.Errorf("processes left after destroy: %v", ps)
		}
		return nil
	})
}
