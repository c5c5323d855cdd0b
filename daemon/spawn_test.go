package daemon

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

// A bare name is taken from the working directory (the descriptor's folder, or
// deploy.working_dir) when a regular file of that name is there, else from PATH, as
// dora-rs does. Not parallel: it sets PATH and the current directory.
func TestResolveExecutableBareName(t *testing.T) {
	wd, pathDir := t.TempDir(), t.TempDir()
	t.Setenv("PATH", pathDir)
	beside := writeFile(t, wd, "s.sh", 0o755)
	writeFile(t, pathDir, "s.sh", 0o755) // shadowed by the one beside the descriptor
	inPath := writeFile(t, pathDir, "tool", 0o755)
	notExec := writeFile(t, wd, "noexec", 0o644)
	writeFile(t, pathDir, "noexec", 0o755) // not used: the file beside wins, as in dora-rs
	if err := os.Mkdir(filepath.Join(wd, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	subInPath := writeFile(t, pathDir, "sub", 0o755) // a folder beside is not the executable

	for _, tt := range []struct{ name, wd, want string }{
		{"s.sh", wd, beside},
		{"tool", wd, inPath},
		{"sub", wd, subInPath},
		{"tool", "", inPath},
		{"s.sh", "", filepath.Join(pathDir, "s.sh")},
	} {
		got, err := resolveExecutable(tt.name, tt.wd)
		if err != nil || got != tt.want {
			t.Errorf("resolveExecutable(%q, %q) = %q, %v; want %q", tt.name, tt.wd, got, err, tt.want)
		}
	}

	if got, err := resolveExecutable("noexec", wd); err == nil || !strings.Contains(err.Error(), notExec+" is not executable") {
		t.Errorf("beside but not executable: %q, %v; want an error naming %s", got, err, notExec)
	}

	_, err := resolveExecutable("ghost", wd)
	if err == nil {
		t.Fatal("a bare name found nowhere resolved")
	}
	for _, want := range []string{"ghost", "not in working directory " + wd, "not found in $PATH", "PATH=" + pathDir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("error %q does not wrap exec.ErrNotFound", err)
	}
	if _, err := resolveExecutable("ghost", ""); err == nil || strings.Contains(err.Error(), "working directory") ||
		!strings.Contains(err.Error(), "PATH="+pathDir) {
		t.Errorf("no working directory, found nowhere: %v", err)
	}

	// The refusal of a spawn names the node, the name and where it was looked for.
	err = checkSpawn(&proto.SpawnRequest{DataflowID: "df", Nodes: []proto.NodeSpec{
		{ID: "s", Path: "s.sh", WorkingDir: wd},
		{ID: "g", Path: "ghost", WorkingDir: wd},
	}})
	if want := `node "g": ghost: not in working directory ` + wd; err == nil || !strings.Contains(err.Error(), want) ||
		strings.Contains(err.Error(), `"s"`) {
		t.Errorf("checkSpawn = %v; want only %q", err, want)
	}

	// A relative working directory gives an absolute path: exec.Cmd would take a
	// relative one against Dir, the working directory itself.
	t.Chdir(filepath.Dir(wd))
	if got, err := resolveExecutable("s.sh", filepath.Base(wd)); err != nil || got != beside {
		t.Errorf("relative working directory: %q, %v; want %q", got, err, beside)
	}
}

// The user's case: `path: s.sh` with s.sh an executable beside the descriptor, not in
// PATH, starts and runs in that folder.
func TestSpawnBareNameBesideDescriptor(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	startDaemon(t, f, testConfig(t, f))
	dir := t.TempDir()
	writeScript(t, dir, "beside-descriptor.sh", "#!/bin/sh\necho \"ran in $(pwd)\"\n")
	spawn(t, f, "df-bare", proto.NodeSpec{ID: "s", Path: "beside-descriptor.sh", WorkingDir: dir})
	if st := f.waitStatus(t, "df-bare", "s", proto.NodeFinished, 5*time.Second); st.Outcome != "finished" {
		t.Fatalf("s: %+v", st)
	}
	f.waitLog(t, "df-bare", "s", "ran in "+dir, time.Second)
}
