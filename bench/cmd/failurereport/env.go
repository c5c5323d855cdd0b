package main

import (
	"slices"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/procfs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/doractl/doractl/proto"

	"github.com/doractl/doractl/bench/internal/markdown"
)

// env is one isolated local cluster started with `doractl up`: its own loopback ports,
// state folder and CLI environment.
type env struct {
	bin     string // the doractl binary
	dir     string // everything of this cluster lives here
	profile string
	ctrl    string
	node    string
	upArgs  []string
	upWait  time.Duration
}

// result is one doractl invocation.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d: %s%s", r.code, strings.TrimSpace(r.stdout), strings.TrimSpace(r.stderr))
}

// newEnv prepares (does not start) a cluster for profile in a fresh folder under parent.
func newEnv(bin, parent, profile string, upWait time.Duration) (*env, error) {
	dir, err := os.MkdirTemp(parent, profile+"-")
	if err != nil {
		return nil, fmt.Errorf("cluster folder: %w", err)
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	e := &env{bin: bin, dir: dir, profile: profile, upWait: upWait,
		ctrl: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		node: fmt.Sprintf("127.0.0.1:%d", ports[3]),
	}
	e.upArgs = []string{"up", "--profile", profile,
		"--daemon-port", strconv.Itoa(ports[1]),
		"--gossip-port", strconv.Itoa(ports[2]),
		"--node-port", strconv.Itoa(ports[3]),
		"--wait", upWait.String()}
	return e, nil
}

// freePorts returns n distinct free loopback TCP ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func (e *env) stateDir() string { return filepath.Join(e.dir, "state") }

// exec runs doractl with this cluster's environment, bounded by within. A non-zero exit
// is a result, not an error.
func (e *env) exec(ctx context.Context, within time.Duration, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(os.Environ(),
		"DORACTL_STATE_DIR="+e.stateDir(),
		"DORA_COORDINATOR_ADDR="+e.ctrl,
		"DORACTL_DAEMON_ADDR="+e.node,
	)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		r.code = ee.ExitCode()
		err = nil
	}
	if err != nil {
		return r, fmt.Errorf("doractl %s: %w", strings.Join(args, " "), err)
	}
	return r, nil
}

// mustRun is exec that fails on a non-zero exit.
func (e *env) mustRun(ctx context.Context, within time.Duration, args ...string) (result, error) {
	r, err := e.exec(ctx, within, args...)
	if err != nil {
		return r, err
	}
	if r.code != 0 {
		return r, fmt.Errorf("doractl %s: %s", strings.Join(args, " "), r)
	}
	return r, nil
}

// up starts whatever of the coordinator and the daemons of machines does not run yet,
// and waits until they are alive.
func (e *env) up(ctx context.Context, machines ...string) error {
	args := append(append([]string{}, e.upArgs...), "--machines", strings.Join(machines, ","))
	_, err := e.mustRun(ctx, e.upWait+10*time.Second, args...)
	return err
}

func (e *env) jsonOut(ctx context.Context, v any, args ...string) error {
	r, err := e.mustRun(ctx, 20*time.Second, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		return fmt.Errorf("doractl %s: bad JSON: %w", strings.Join(args, " "), err)
	}
	return nil
}

func (e *env) members(ctx context.Context) ([]proto.Member, error) {
	var ms []proto.Member
	err := e.jsonOut(ctx, &ms, "members", "-o", "json")
	return ms, err
}

// member is the coordinator's view of one member (ok false if not listed).
func (e *env) member(ctx context.Context, name string) (proto.Member, bool, error) {
	ms, err := e.members(ctx)
	if err != nil {
		return proto.Member{}, false, err
	}
	for _, m := range ms {
		if m.Name == name {
			return m, true, nil
		}
	}
	return proto.Member{}, false, nil
}

func (e *env) dataflow(ctx context.Context, ref string) (proto.Dataflow, error) {
	var dfs []proto.Dataflow
	if err := e.jsonOut(ctx, &dfs, "list", "-o", "json"); err != nil {
		return proto.Dataflow{}, err
	}
	for _, d := range dfs {
		if d.ID == ref || d.Name == ref {
			return d, nil
		}
	}
	return proto.Dataflow{}, fmt.Errorf("dataflow %s not listed", ref)
}

// pid reads the pid `up` recorded for a process ("coordinator", "daemon-a").
func (e *env) pid(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(e.stateDir(), "up", name+".pid"))
	if err != nil {
		return 0, fmt.Errorf("pid of %s: %w", name, err)
	}
	var pid int
	if _, err := fmt.Sscanf(string(b), "%d", &pid); err != nil {
		return 0, fmt.Errorf("pid file of %s: %w", name, err)
	}
	return pid, nil
}

// signal sends sig to a process `up` started.
func (e *env) signal(name string, sig syscall.Signal) (int, error) {
	pid, err := e.pid(name)
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return pid, fmt.Errorf("signal %s to %s (pid %d): %w", sig, name, pid, err)
	}
	return pid, nil
}

// destroy stops the cluster, then kills whatever of it is left: processes whose
// environment names the cluster's state folder (the servers and the nodes they spawned,
// including nodes orphaned by a killed daemon).
func (e *env) destroy(ctx context.Context) {
	if _, err := e.exec(ctx, 40*time.Second, "destroy", "--grace-duration", "1s"); err != nil {
		markdown.Progress("destroy: %v", err)
	}
	e.killLeftovers()
}

func (e *env) killLeftovers() {
	for _, pid := range processesWithEnv("DORACTL_STATE_DIR=" + e.stateDir()) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesWithEnv lists the pids of live processes (not this one) whose environment
// holds the entry kv.
func processesWithEnv(kv string) []int {
	return procfs.Find(func(pid int) bool { return slices.Contains(procfs.Environ(pid), kv) })
}

// pollUntil calls f every interval until it returns true or an error, or within passes.
func pollUntil(ctx context.Context, within, interval time.Duration, what string, f func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, within)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}
