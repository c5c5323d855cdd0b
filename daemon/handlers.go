package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/doractl/doractl/proto"
)

// onCoordinatorRequest serves the coordinator's requests. proto.Conn runs each on its own
// goroutine; the ones that take time answer at once and report progress with node status
// events, so nothing here holds up the link.
func (d *Daemon) onCoordinatorRequest(ctx context.Context, typ string, body proto.Body) (any, error) {
	switch typ {
	case proto.TypeSpawn:
		var req proto.SpawnRequest
		if err := body.Decode(&req); err != nil {
			return nil, fmt.Errorf("spawn: %w", err)
		}
		return d.handleSpawn(&req)
	case proto.TypeStop:
		var req proto.StopRequest
		if err := body.Decode(&req); err != nil {
			return nil, fmt.Errorf("stop: %w", err)
		}
		df := d.dataflow(req.DataflowID)
		if df == nil {
			return nil, fmt.Errorf("stop: unknown dataflow %q on daemon %s", req.DataflowID, d.cfg.Name)
		}
		d.stopDataflow(df, d.planFor(&req))
		return &proto.Ack{OK: true}, nil
	case proto.TypeLogs:
		var req proto.LogsRequest
		if err := body.Decode(&req); err != nil {
			return nil, fmt.Errorf("logs: %w", err)
		}
		return d.readLogs(ctx, &req)
	case proto.TypeKill:
		var req proto.KillRequest
		if err := body.Decode(&req); err != nil {
			return nil, fmt.Errorf("kill: %w", err)
		}
		d.log.Warn("coordinator fences dataflows: killing their nodes", "dataflows", req.DataflowIDs)
		d.killDataflows(req.DataflowIDs, outcomeFenced)
		return &proto.Ack{OK: true}, nil
	case proto.TypeDaemonDead:
		return d.handleDaemonDead(body)
	case proto.TypeDestroy:
		var req proto.DestroyRequest
		if err := body.Decode(&req); err != nil {
			return nil, fmt.Errorf("destroy: %w", err)
		}
		d.log.Info("coordinator asks this daemon to destroy itself", "grace", req.Grace)
		select {
		case d.destroyCh <- req.Grace:
		default: // a destroy is already under way
		}
		return &proto.Ack{OK: true}, nil
	}
	return nil, fmt.Errorf("daemon %s does not serve %q requests", d.cfg.Name, typ)
}

// handleSpawn records a dataflow and starts its nodes in the background. A spawn of a
// dataflow this daemon already has is acknowledged again without starting anything, so
// the coordinator may retry.
func (d *Daemon) handleSpawn(req *proto.SpawnRequest) (*proto.Ack, error) {
	if err := checkSpawn(req); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.shutting {
		d.mu.Unlock()
		return nil, fmt.Errorf("spawn %s: daemon %s is shutting down", req.DataflowID, d.cfg.Name)
	}
	if _, ok := d.dataflows[req.DataflowID]; ok {
		d.mu.Unlock()
		d.log.Info("spawn of a dataflow already here: acknowledged again", "dataflow", req.DataflowID)
		return &proto.Ack{OK: true}, nil
	}
	df := d.newDataflow(req)
	d.dataflows[req.DataflowID] = df
	if d.links != nil {
		d.links.addDataflow(req, df.router)
	}
	d.mu.Unlock()
	d.log.Info("spawning dataflow", "dataflow", req.DataflowID, "name", req.Name, "nodes", len(req.Nodes))
	go d.startDataflow(df)
	return &proto.Ack{OK: true}, nil
}

// checkSpawn rejects requests that cannot be run at all: malformed ones, and nodes whose
// executable or working directory is missing on this machine, so that `start` fails
// before anything runs and names every such node. (A node that still fails to start,
// e.g. its file vanished meanwhile, gets a "failed (spawn: ...)" outcome.)
func checkSpawn(req *proto.SpawnRequest) error {
	if req.DataflowID == "" {
		return errors.New("spawn: no dataflow id")
	}
	if len(req.Nodes) == 0 {
		return fmt.Errorf("spawn %s: no nodes", req.DataflowID)
	}
	seen := map[string]bool{}
	for _, n := range req.Nodes {
		if n.ID == "" {
			return fmt.Errorf("spawn %s: a node has no id", req.DataflowID)
		}
		if seen[n.ID] {
			return fmt.Errorf("spawn %s: node id %q given twice", req.DataflowID, n.ID)
		}
		seen[n.ID] = true
	}
	var bad []string
	for _, n := range req.Nodes {
		if err := checkRunnable(n); err != nil {
			bad = append(bad, fmt.Sprintf("node %q: %v", n.ID, err))
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// checkRunnable reports why a node cannot be started here, or nil.
func checkRunnable(n proto.NodeSpec) error {
	if n.Path == proto.DynamicNodeProtocol {
		return nil // started by the user, not by the daemon
	}
	if err := checkWorkingDir(n.WorkingDir); err != nil {
		return err
	}
	if n.Path == proto.ShellNodePath {
		return nil
	}
	_, err := resolveExecutable(n.Path, n.WorkingDir)
	return err
}
