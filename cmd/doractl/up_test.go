package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doractl/doractl/dataflow"
	"github.com/doractl/doractl/internal/testutil"
)

func TestCheckMachineIDs(t *testing.T) {
	for _, tt := range []struct {
		ids  []string
		want string // "" = valid
	}{
		{nil, ""},
		{[]string{"robot-a", "robot_b.2"}, ""},
		{[]string{"robot-a", "robot-a"}, `duplicate machine id "robot-a"`},
		{[]string{"a", "b/c"}, `invalid machine id "b/c"`},
		{[]string{""}, `invalid machine id ""`},
	} {
		err := checkMachineIDs(tt.ids)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: %v", tt.ids, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: error %v, want %q", tt.ids, err, tt.want)
		}
	}
}

func TestLastLogLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.log")
	if err := os.WriteFile(p, []byte("starting\nError: listen: address already in use\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := lastLogLine(p), "Error: listen: address already in use"; got != want {
		t.Errorf("lastLogLine = %q, want %q", got, want)
	}
}

func TestPathWarnings(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"ok": 0o755, "noexec": 0o644, "s.sh": 0o755, "sub/t.sh": 0o755} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	src := "nodes:\n" +
		"  - id: ok\n    path: ./ok\n" +
		"  - id: noexec\n    path: ./noexec\n" +
		"  - id: missing\n    path: ./missing\n" +
		"  - id: dir\n    path: " + dir + "\n" +
		"  - id: bare\n    path: sleep\n" +
		"  - id: beside\n    path: s.sh\n" +
		"  - id: besidewd\n    path: t.sh\n    deploy:\n      working_dir: sub\n" +
		"  - id: besidenoexec\n    path: noexec\n" +
		"  - id: ghost\n    path: no-such-command-anywhere\n" +
		"  - id: dyn\n    path: dynamic\n" +
		"  - id: nowd\n    path: ./ok\n    deploy:\n      working_dir: nowhere\n" +
		"  - id: wd\n    path: " + filepath.Join(dir, "ok") + "\n    deploy:\n      working_dir: .\n"
	d, err := dataflow.Parse([]byte(src), "d.yml")
	if err != nil {
		t.Fatal(err)
	}
	d.Dir = dir
	got := strings.Join(pathWarnings(d), "\n")
	for _, want := range []string{`"noexec": path ` + filepath.Join(dir, "noexec") + " is not executable",
		`"missing": path ` + filepath.Join(dir, "missing") + " does not exist", `"dir": path ` + dir + " is a directory",
		`"nowd": working directory ` + filepath.Join(dir, "nowhere") + " is not a directory on this machine",
		`"besidenoexec": path ` + filepath.Join(dir, "noexec") + " is not executable on this machine",
		`"ghost": path no-such-command-anywhere is neither in ` + dir + " nor in $PATH on this machine"} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
	if n := len(pathWarnings(d)); n != 6 {
		t.Errorf("%d warnings, want 6: %q", n, got)
	}
	if plural(1, "node") != "1 node" || plural(2, "node") != "2 nodes" {
		t.Error("plural")
	}
	if got := truncate(strings.Repeat("x", 70), 60); len(got) != 60 || !strings.HasSuffix(got, "...") {
		t.Errorf("truncate = %q", got)
	}
}

// A re-run of up without --machines keeps the daemons an earlier up started, and the
// summary counts every daemon alive.
func TestUpAgainKeepsMachines(t *testing.T) {
	skipShort(t)
	e := newEnv(t)
	e.upMachines("a", "b")
	r := e.mustRun(e.upArgs...)
	for _, want := range []string{"keeping the machines of the earlier up: a, b", "daemon daemon-a already running",
		"daemon daemon-b already running", "2 daemon(s) alive"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("up again: no %q in\n%s", want, r.stdout)
		}
	}
	t.Logf("up again:\n%s", r.stdout)
	if strings.Contains(r.stdout, "starting daemon") {
		t.Errorf("up again started a daemon:\n%s", r.stdout)
	}
	r = e.mustRun(append(append([]string{}, e.upArgs...), "--machines", "a,b,c")...)
	if !strings.Contains(r.stdout, "starting daemon-c") || !strings.Contains(r.stdout, "3 daemon(s) alive") {
		t.Errorf("up --machines a,b,c:\n%s", r.stdout)
	}
	// Fewer machines: up removes none, and says so.
	r = e.mustRun(append(append([]string{}, e.upArgs...), "--machines", "a,b")...)
	if !strings.Contains(r.stdout, "note: daemon-c of an earlier up keeps running (not in --machines") {
		t.Errorf("up --machines a,b after a,b,c:\n%s", r.stdout)
	}

	// The coordinator and a daemon crash: up without --profile or --machines brings the
	// same cluster back, with the same profile.
	coordPid, daemonPid := e.pid("coordinator"), e.pid("daemon-a")
	for _, pid := range []int{coordPid, daemonPid} {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if pidAlive(coordPid) || pidAlive(daemonPid) {
			return errors.New("killed processes still running")
		}
		return nil
	})
	var noProfile []string
	for i := 0; i < len(e.upArgs); i++ {
		if e.upArgs[i] == "--profile" {
			i++
			continue
		}
		noProfile = append(noProfile, e.upArgs[i])
	}
	r = e.mustRun(noProfile...)
	for _, want := range []string{"keeping the profile of the earlier up: local", "keeping the machines of the earlier up: a, b, c",
		"starting coordinator", "starting daemon-a", "3 daemon(s) alive"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("up after the crash: no %q in\n%s", want, r.stdout)
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.stateDir(), "up", "coordinator.log")); err != nil || !strings.Contains(string(b), "profile=local") {
		t.Errorf("restarted coordinator's log does not show profile=local (%v)", err)
	}
}
