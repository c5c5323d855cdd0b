package procfs

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/internal/testutil"
)

func TestReadStatOfAChild(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.Env = append(os.Environ(), "PROCFS_TEST_MARK=child")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	// Until the child has exec'd, /proc shows the parent's command line.
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if c := Cmdline(pid); c != "sleep 30" {
			return fmt.Errorf("Cmdline = %q", c)
		}
		return nil
	})
	st, err := ReadStat(pid)
	if err != nil || st.StartTime == 0 || st.Pgrp == 0 {
		t.Fatalf("ReadStat(%d) = %+v, %v", pid, st, err)
	}
	if !Alive(pid) {
		t.Fatal("a sleeping child is not alive")
	}
	if !slices.Contains(Environ(pid), "PROCFS_TEST_MARK=child") {
		t.Fatal("Environ lacks the child's entry")
	}
	found := Find(func(p int) bool { return slices.Contains(Environ(p), "PROCFS_TEST_MARK=child") })
	if !slices.Equal(found, []int{pid}) {
		t.Fatalf("Find = %v, want [%d]", found, pid)
	}
	if slices.Contains(Pids(), os.Getpid()) {
		t.Fatal("Pids lists this process")
	}
}

func TestReadStatOfAGonePid(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	if _, err := ReadStat(cmd.Process.Pid); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("ReadStat of a reaped pid: %v", err)
	}
	if Alive(cmd.Process.Pid) {
		t.Fatal("a reaped pid is alive")
	}
}
