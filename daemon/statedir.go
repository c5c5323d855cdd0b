package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// State files, under StateDir/<name>/.
const (
	pidFileName   = "daemon.pid" // locked while the daemon runs
	nodesFileName = "nodes.json" // node processes started, for orphan cleanup
	sockFileName  = "node.sock"  // unix socket of spawned nodes
	dataflowsDir  = "dataflows"  // dataflows/<id>/<node>.log
	maxSockPath   = 100          // sun_path holds 108 bytes on Linux; keep a margin
)

// safeName makes an id usable as one path component.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == 0 || r == '\\' {
			return '_'
		}
		return r
	}, s)
	if s == "" || s == "." || s == ".." {
		s = "_" + s
	}
	return s
}

// logPath is the log file of one node.
func (d *Daemon) logPath(dfID, nodeID string) string {
	return filepath.Join(d.dir, dataflowsDir, safeName(dfID), safeName(nodeID)+".log")
}

// socketPath is where spawned nodes reach the daemon. Unix socket paths are short, so a
// deep state folder gets a socket in the temp folder instead, named after the folder.
func socketPath(dir string) string {
	p := filepath.Join(dir, sockFileName)
	if len(p) <= maxSockPath {
		return p
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(os.TempDir(), "doractl-"+hex.EncodeToString(sum[:8])+".sock")
}

// lockStateDir creates the state folder and takes its pid file lock, so that two daemons
// never share a state folder (and never kill each other's nodes as orphans).
func lockStateDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Join(dir, dataflowsDir), 0o755); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	p := filepath.Join(dir, pidFileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(p)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state folder %s is in use by another daemon (pid %s)", dir, strings.TrimSpace(string(b)))
		}
		return nil, fmt.Errorf("lock pid file %s: %w", p, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlockStateDir removes the pid file and releases its lock.
func unlockStateDir(f *os.File) {
	if f == nil {
		return
	}
	_ = os.Remove(f.Name())
	_ = f.Close()
}
