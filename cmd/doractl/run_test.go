package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

const runDynamicDataflow = `nodes:
  - id: rust-node
    path: BIN/rust-node
    inputs:
      tick: dora/timer/millis/50
    outputs:
      - random
  - id: rust-status-node
    path: BIN/rust-status-node
    inputs:
      tick: dora/timer/millis/100
      random: rust-node/random
    outputs:
      - status
  - id: rust-sink-dynamic
    path: dynamic
    inputs:
      message: rust-status-node/status
`

const runStubbornDataflow = `nodes:
  - id: rust-node
    path: BIN/rust-node
    inputs:
      tick: dora/timer/millis/50
    outputs:
      - random
  - id: stubborn
    path: BIN/stubborn
`

const runFailingDataflow = `nodes:
  - id: failing
    path: BIN/exit-code
    env:
      EXIT_CODE: 3
      EXIT_AFTER: 300ms
`

// runProc is a `doractl run` started in the background.
type runProc struct {
	cmd            *exec.Cmd
	stdout, stderr *testutil.SyncBuffer // both the terminal's output under a pty
	pty            *os.File             // nil without a pty
	done           chan struct{}
	code           int
}

// runEnv is the environment of a `doractl run` of e: its state folder.
func (e *env) runEnv() []string {
	return append(os.Environ(), "DORACTL_STATE_DIR="+filepath.Join(e.dir, "state"))
}

// startRun starts `doractl run` with args; withPTY runs it on a terminal.
func (e *env) startRun(withPTY bool, args ...string) *runProc {
	e.t.Helper()
	return e.startProc(withPTY, e.runEnv(), append([]string{"run"}, args...)...)
}

// startProc starts doractl with args and env in the background.
func (e *env) startProc(withPTY bool, env []string, args ...string) *runProc {
	e.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "doractl"), args...)
	cmd.Env = env
	p := &runProc{cmd: cmd, stdout: &testutil.SyncBuffer{}, stderr: &testutil.SyncBuffer{}, done: make(chan struct{})}
	copied := make(chan struct{})
	if withPTY {
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
		if err != nil {
			e.t.Fatal(err)
		}
		p.pty, p.stderr = f, p.stdout
		go func() {
			defer close(copied)
			_, _ = ioCopy(p.stdout, f)
		}()
	} else {
		close(copied) // exec copies the pipes before Wait returns
		cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
		if err := cmd.Start(); err != nil {
			e.t.Fatal(err)
		}
	}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			p.code = ee.ExitCode()
		case err != nil:
			p.code = -1
		}
		// The terminal's last output is read once the process is gone (EIO after it).
		select {
		case <-copied:
		case <-time.After(5 * time.Second):
		}
		close(p.done)
	}()
	e.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if p.pty != nil {
			_ = p.pty.Close()
		}
	})
	return p
}

// ioCopy copies until the reader fails (a pty read fails with EIO once the child is gone).
func ioCopy(w *testutil.SyncBuffer, r *os.File) (int64, error) {
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			_, _ = w.Write(buf[:k])
			n += int64(k)
		}
		if err != nil {
			return n, err
		}
	}
}

func (p *runProc) String() string {
	return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
}

// wait waits for the run to exit within timeout and returns its exit code.
func (p *runProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("doractl run still running after %s\n%s", timeout, p)
		return 0
	}
}

// waitOutput polls until the output (stdout, or the terminal) contains want.
func (p *runProc) waitOutput(t *testing.T, timeout time.Duration, stream *testutil.SyncBuffer, want string) {
	t.Helper()
	testutil.CheckFor(t, timeout, 50*time.Millisecond, func() error {
		if strings.Contains(stream.String(), want) {
			return nil
		}
		select {
		case <-p.done:
			t.Fatalf("doractl run exited (code %d) before printing %q\n%s", p.code, want, p)
		default:
		}
		return fmt.Errorf("no %q in the output yet", want)
	})
}

// summaryRow finds the summary line of a node: "NODE STATUS OUTCOME".
func summaryRow(t *testing.T, out, node string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(node) + `\s+(\S+)\s+.*$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary row for node %s in:\n%s", node, out)
	}
	return m[1]
}

// The example to completion with --stop-after: exit 0, every node listed as stopped or
// finished, the sink's lines prefixed with its id, its log file kept, nothing left running.
func TestRunStopAfter(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("dataflow.yml", rustDataflow)
	start := time.Now()
	r := e.run("run", df, "--stop-after", "2s", "--grace-duration", "5s",
		"--node-addr", fmt.Sprintf("127.0.0.1:%d", e.nodePort))
	if r.code != 0 {
		t.Fatalf("doractl run: %s", r)
	}
	if el := time.Since(start); el < 2*time.Second || el > 20*time.Second {
		t.Errorf("run took %s, want a little over --stop-after 2s", el)
	}
	if !regexp.MustCompile(`(?m)^rust-sink: sink received message: `).MatchString(r.stdout) {
		t.Errorf("no sink lines prefixed 'rust-sink: ' in stdout:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^rust-node: tick \d+`).MatchString(r.stdout) {
		t.Errorf("no rust-node lines prefixed in stdout:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Errorf("colour codes in piped output:\n%q", r.stdout)
	}
	if strings.Contains(r.stderr, "dynamic nodes connect") || !strings.Contains(r.stderr, "node logs in ") {
		t.Errorf("a run without dynamic nodes must not point at the dynamic-node port:\n%s", r.stderr)
	}
	for _, n := range []string{"rust-node", "rust-status-node", "rust-sink"} {
		if st := summaryRow(t, r.stderr, n); st != "stopped" && st != "finished" {
			t.Errorf("node %s: status %s in the summary, want stopped or finished\n%s", n, st, r.stderr)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(e.dir, "state", "run", "dataflows", "*", "rust-sink.log"))
	if len(logs) != 1 {
		t.Fatalf("want one kept rust-sink.log, got %v", logs)
	}
	if b, _ := os.ReadFile(logs[0]); !bytes.Contains(b, []byte("sink received message")) {
		t.Errorf("rust-sink.log has no sink lines:\n%s", b)
	}
	testutil.CheckFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		if ps := processesOfEnv(e.dir); len(ps) > 0 {
			return fmt.Errorf("still running: %v", ps)
		}
		return nil
	})

	// --quiet: no node output, the same summary.
	r = e.run("run", df, "--stop-after", "1s", "--quiet", "--node-addr", fmt.Sprintf("127.0.0.1:%d", e.nodePort))
	if r.code != 0 || strings.Contains(r.stdout, "rust-sink:") {
		t.Fatalf("doractl run --quiet: want exit 0 and no node output: %s", r)
	}
	summaryRow(t, r.stderr, "rust-sink")
}

// A dynamic sink started by hand connects to the run's --node-addr, receives messages, and
// is counted in the outcome; SIGTERM stops the run cleanly.
func TestRunDynamicNode(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("dynamic.yml", runDynamicDataflow)
	addr := fmt.Sprintf("127.0.0.1:%d", e.nodePort)
	p := e.startRun(false, df, "--node-addr", addr, "--grace-duration", "5s")
	p.waitOutput(t, 15*time.Second, p.stderr, "dynamic nodes connect to "+addr+" (rust-sink-dynamic)")

	sink := exec.Command(filepath.Join(binDir, "rust-sink-dynamic"))
	sink.Env = append(e.runEnv(), "DORACTL_DAEMON_ADDR="+addr)
	var sinkOut testutil.SyncBuffer
	sink.Stdout, sink.Stderr = &sinkOut, &sinkOut
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- sink.Wait() }()
	t.Cleanup(func() { _ = sink.Process.Kill() })
	testutil.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if strings.Count(sinkOut.String(), "sink received message") >= 3 {
			return nil
		}
		return fmt.Errorf("dynamic sink output so far:\n%s", sinkOut.String())
	})

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("doractl run exited %d after SIGTERM, want 0\n%s", code, p)
	}
	select {
	case err := <-sinkDone:
		if err != nil {
			t.Errorf("dynamic sink: %v\n%s", err, sinkOut.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("dynamic sink still running after the run ended\n%s", sinkOut.String())
	}
	if st := summaryRow(t, p.stderr.String(), "rust-sink-dynamic"); st != "stopped" && st != "finished" {
		t.Errorf("dynamic node: status %s, want stopped or finished\n%s", st, p)
	}
}

// Ctrl-C on a terminal: once stops gracefully (a stubborn node is killed after the grace),
// twice forces at once.
func TestRunCtrlC(t *testing.T) {
	skipShort(t)
	t.Run("once", func(t *testing.T) {
		e := newEnv(t)
		df := e.writeDataflow("dataflow.yml", rustDataflow)
		p := e.startRun(true, df, "--node-addr", fmt.Sprintf("127.0.0.1:%d", e.nodePort))
		p.waitOutput(t, 15*time.Second, p.stdout, "sink received message")
		if !strings.Contains(p.stdout.String(), "\x1b[") {
			t.Errorf("no colour on a terminal:\n%q", p.stdout.String())
		}
		_, _ = p.pty.Write([]byte{0x03})
		if code := p.wait(t, 15*time.Second); code != 0 {
			t.Fatalf("exit %d after one Ctrl-C, want 0\n%s", code, p)
		}
		if out := p.stdout.String(); !strings.Contains(out, "stopping (grace 10s)") {
			t.Errorf("no graceful stop message:\n%s", out)
		}
	})
	t.Run("stubborn once waits for grace", func(t *testing.T) {
		e := newEnv(t)
		df := e.writeDataflow("stubborn.yml", runStubbornDataflow)
		p := e.startRun(true, df, "--grace-duration", "2s", "--node-addr", fmt.Sprintf("127.0.0.1:%d", e.nodePort))
		p.waitOutput(t, 15*time.Second, p.stdout, "stubborn node running")
		p.waitOutput(t, 15*time.Second, p.stdout, "tick 1,")
		sent := time.Now()
		_, _ = p.pty.Write([]byte{0x03})
		code := p.wait(t, 20*time.Second)
		el := time.Since(sent)
		if code != 0 {
			t.Fatalf("exit %d, want 0 (killed after grace is a clean stop)\n%s", code, p)
		}
		if el < 2*time.Second {
			t.Errorf("exited %s after one Ctrl-C: did not wait for the 2s grace\n%s", el, p)
		}
		if st := summaryRow(t, p.stdout.String(), "stubborn"); st != "killed" {
			t.Errorf("stubborn: status %s, want killed\n%s", st, p)
		}
	})
	t.Run("stubborn twice forces", func(t *testing.T) {
		e := newEnv(t)
		df := e.writeDataflow("stubborn.yml", runStubbornDataflow)
		p := e.startRun(true, df, "--grace-duration", "60s", "--node-addr", fmt.Sprintf("127.0.0.1:%d", e.nodePort))
		p.waitOutput(t, 15*time.Second, p.stdout, "stubborn node running")
		_, _ = p.pty.Write([]byte{0x03})
		p.waitOutput(t, 5*time.Second, p.stdout, "stopping (grace 1m0s)")
		select {
		case <-p.done:
			t.Fatalf("exited on the first Ctrl-C with a stubborn node and a 60s grace\n%s", p)
		default:
		}
		sent := time.Now()
		// Press again until the run takes it as the second Ctrl-C (one landing within
		// the duplicate-signal window of the first is ignored, by design).
		testutil.CheckFor(t, 5*time.Second, 300*time.Millisecond, func() error {
			if strings.Contains(p.stdout.String(), "forcing stop") {
				return nil
			}
			_, _ = p.pty.Write([]byte{0x03})
			return fmt.Errorf("no forced stop yet")
		})
		p.wait(t, 10*time.Second)
		if el := time.Since(sent); el > 5*time.Second {
			t.Errorf("second Ctrl-C took %s to end the run, want a forced stop at once", el)
		}
		if out := p.stdout.String(); !strings.Contains(out, "forcing stop") {
			t.Errorf("no forced stop message:\n%s", out)
		}
		testutil.CheckFor(t, 3*time.Second, 50*time.Millisecond, func() error {
			if ps := processesOfEnv(e.dir); len(ps) > 0 {
				return fmt.Errorf("still running: %v", ps)
			}
			return nil
		})
	})
}

// kill -9 of the run leaves no node running: the kernel kills spawned nodes (stubborn
// ones too) when their parent dies.
func TestRunKill9LeavesNoNode(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("stubborn.yml", runStubbornDataflow)
	p := e.startRun(false, df, "--node-addr", fmt.Sprintf("127.0.0.1:%d", e.nodePort))
	p.waitOutput(t, 15*time.Second, p.stdout, "stubborn node running")
	p.waitOutput(t, 15*time.Second, p.stdout, "rust-node: tick 1,")
	var nodes []string
	for _, ps := range processesOfEnv(e.dir) {
		if pid, _ := strconv.Atoi(ps); pid != p.cmd.Process.Pid {
			nodes = append(nodes, ps)
		}
	}
	if len(nodes) < 2 {
		t.Fatalf("want the 2 node processes running before the kill, got %v", nodes)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 5*time.Second)
	testutil.CheckFor(t, 3*time.Second, 50*time.Millisecond, func() error {
		if ps := processesOfEnv(e.dir); len(ps) > 0 {
			return fmt.Errorf("still running after kill -9 of doractl run: %v", ps)
		}
		return nil
	})
}

// A failing node makes the run fail with one line naming it and its exit code.
func TestRunFailingNode(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	df := e.writeDataflow("failing.yml", runFailingDataflow)
	r := e.run("run", df, "--node-addr", fmt.Sprintf("127.0.0.1:%d", e.nodePort))
	if r.code == 0 {
		t.Fatalf("doractl run of a failing node exited 0: %s", r)
	}
	if !strings.Contains(r.stderr, `Error: node "failing" failed (exit 3)`+"\n") {
		t.Errorf("want the one-line reason naming the node:\n%s", r)
	}
	if !strings.Contains(r.stdout, "failing: exiting with code 3") {
		t.Errorf("no prefixed output of the failing node:\n%s", r.stdout)
	}
}
