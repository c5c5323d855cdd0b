package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/internal/procfs"
	"github.com/doractl/doractl/proto"
)

// nodeRecord is one node process this daemon started, as written to nodes.json.
type nodeRecord struct {
	Dataflow  string `json:"dataflow"`
	Node      string `json:"node"`
	PID       int    `json:"pid"`
	PGID      int    `json:"pgid"`
	StartTime uint64 `json:"start_time"` // /proc/<pid>/stat starttime: tells a reused pid apart
	Epoch     int64  `json:"epoch"`      // boot epoch of the daemon that started it
}

// pidStore keeps nodes.json in step with the processes the daemon runs, so that the next
// life of the daemon can kill what a crash left behind.
type pidStore struct {
	path string
	log  hclog.Logger

	mu   sync.Mutex
	recs map[int]nodeRecord
}

func newPidStore(path string, log hclog.Logger) *pidStore {
	return &pidStore{path: path, log: log, recs: map[int]nodeRecord{}}
}

func (s *pidStore) add(r nodeRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[r.PID] = r
	s.saveLocked()
}

func (s *pidStore) remove(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[pid]; !ok {
		return
	}
	delete(s.recs, pid)
	s.saveLocked()
}

func (s *pidStore) saveLocked() {
	list := make([]nodeRecord, 0, len(s.recs))
	for _, r := range s.recs {
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].PID < list[j].PID })
	if err := writeRecords(s.path, list); err != nil {
		s.log.Warn("record of node processes not saved", "path", s.path, "error", err)
	}
}

// writeRecords replaces the file atomically.
func writeRecords(path string, list []nodeRecord) error {
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("encode node records: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// readRecords reads nodes.json; a missing file is an empty list.
func readRecords(path string) ([]nodeRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var list []nodeRecord
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return list, nil
}

// killOrphans kills the node processes recorded by an earlier life of this daemon (any
// epoch other than epoch) that still run. A process is only killed when its pid still
// names the same process (same start time) and it still leads the recorded group, so a
// reused pid is never touched. It returns the records of the processes it killed and
// clears the file.
func killOrphans(path string, epoch int64, log hclog.Logger) ([]nodeRecord, error) {
	list, err := readRecords(path)
	if err != nil {
		return nil, err
	}
	var killed []nodeRecord
	for _, r := range list {
		if r.Epoch == epoch || r.PID <= 1 {
			continue
		}
		st, err := procfs.ReadStat(r.PID)
		if err != nil || st.State == 'Z' {
			continue // gone (or only a zombie waiting for its parent)
		}
		if r.StartTime == 0 || st.StartTime != r.StartTime || st.Pgrp != r.PGID {
			log.Info("recorded node pid now names another process, left alone", "pid", r.PID, "dataflow", r.Dataflow, "node", r.Node)
			continue
		}
		if err := killGroup(r.PGID, syscall.SIGKILL); err != nil {
			log.Warn("kill node left by a previous daemon", "pid", r.PID, "error", err)
			continue
		}
		log.Warn("killed node left running by a previous life of this daemon",
			"dataflow", r.Dataflow, "node", r.Node, "pid", r.PID, "epoch", r.Epoch)
		killed = append(killed, r)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return killed, fmt.Errorf("state folder: %w", err)
	}
	return killed, writeRecords(path, nil)
}

// killUnrecorded kills the processes of an earlier life of the daemon of this state folder
// that nodes.json missed (a crash between a fork and its record): those whose environment
// names this folder's node socket and another boot epoch (epoch 0: any). Processes that
// nodes started inherit that environment and go with them.
func killUnrecorded(sockPath string, epoch int64, log hclog.Logger) []LeftNode {
	addr := proto.EnvDaemonAddr + "=unix:" + sockPath
	mine := proto.EnvDaemonEpoch + "=" + strconv.FormatInt(epoch, 10)
	var killed []LeftNode
	for _, p := range killByEnv(func(env []string) bool {
		return slices.Contains(env, addr) && !slices.Contains(env, mine) && envValue(env, proto.EnvDaemonEpoch) != ""
	}, log) {
		n := LeftNode{Dataflow: envValue(p.env, proto.EnvDataflowID), Node: envValue(p.env, proto.EnvNodeID), PID: p.pid}
		log.Warn("killed unrecorded node process left running by a previous life of this daemon",
			"dataflow", n.Dataflow, "node", n.Node, "pid", p.pid, "cmdline", p.cmdline)
		killed = append(killed, n)
	}
	return killed
}

// envValue is the value of key in a KEY=VALUE list ("" if absent).
func envValue(env []string, key string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, key+"="); ok {
			return v
		}
	}
	return ""
}
