package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
)

// LeftNode is a node process that KillLeftNodes killed.
type LeftNode struct {
	Dataflow, Node string
	PID            int
}

// KillLeftNodes kills the node processes of a daemon's state folder (dir is
// StateDir/<name>) that still run after the daemon itself is gone, as a SIGKILL of the
// daemon leaves them: those nodes.json records, and those it missed (see killUnrecorded).
// It takes the folder's lock first, so it never touches the nodes of a daemon that runs;
// a folder without a record is nothing to do.
func KillLeftNodes(dir string, log hclog.Logger) ([]LeftNode, error) {
	if _, err := os.Stat(filepath.Join(dir, nodesFileName)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	lock, err := lockStateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("nodes left by the daemon of %s: %w", dir, err)
	}
	defer unlockStateDir(lock)
	// Epoch 0 is no daemon's: every recorded process is an orphan now.
	recs, err := killOrphans(filepath.Join(dir, nodesFileName), 0, log)
	out := make([]LeftNode, 0, len(recs))
	for _, r := range recs {
		out = append(out, LeftNode{Dataflow: r.Dataflow, Node: r.Node, PID: r.PID})
	}
	out = append(out, killUnrecorded(socketPath(dir), 0, log)...)
	if err != nil {
		return out, fmt.Errorf("nodes left by the daemon of %s: %w", dir, err)
	}
	return out, nil
}
