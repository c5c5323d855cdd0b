package dataflow

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Node returns the node with the given id, or nil.
func (d *Descriptor) Node(id string) *Node {
	for _, n := range d.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Consumers returns every input, in node order, that subscribes to the
// output of the node nodeID.
func (d *Descriptor) Consumers(nodeID, output string) []Subscriber {
	var out []Subscriber
	for _, n := range d.Nodes {
		for _, in := range n.Inputs {
			s := in.Source
			if s.Kind == SourceNode && s.Node == nodeID && s.Output == output {
				out = append(out, Subscriber{Node: n.ID, Input: in.ID, QueueSize: in.QueueSize})
			}
		}
	}
	return out
}

// Timers returns the distinct timer intervals used by inputs, shortest
// first.
func (d *Descriptor) Timers() []time.Duration {
	var out []time.Duration
	for _, n := range d.Nodes {
		for _, in := range n.Inputs {
			if in.Source.Kind == SourceTimer && !slices.Contains(out, in.Source.Interval) {
				out = append(out, in.Source.Interval)
			}
		}
	}
	slices.Sort(out)
	return out
}

// EnvFor returns the environment of node n: the dataflow-level env
// overridden by the node's own. The result is a fresh map.
func (d *Descriptor) EnvFor(n *Node) map[string]string {
	out := make(map[string]string, len(d.Env)+len(n.Env))
	maps.Copy(out, d.Env)
	maps.Copy(out, n.Env)
	return out
}

// IsDynamic reports whether the node is started outside the runtime.
func (n *Node) IsDynamic() bool { return n.Path == DynamicPath }

// IsShell reports whether the node's args are run by a shell.
func (n *Node) IsShell() bool { return n.Path == ShellPath }

// ResolvedPath returns the executable to run. An absolute path, "dynamic"
// and "shell" are returned as they are, and so is a bare name without a
// slash: the daemon that spawns the node takes it from the node's working
// directory (PathBase) if a file of that name is there, else from PATH, as
// dora-rs does. Any other relative path is resolved against PathBase(dir).
// For a git node, dir is the clone directory.
func (n *Node) ResolvedPath(dir string) string {
	p := n.Path
	if p == "" || p == DynamicPath || p == ShellPath || filepath.IsAbs(p) || IsBareName(p) {
		return p
	}
	base := n.PathBase(dir)
	if base == "" {
		return p
	}
	return filepath.Join(base, p)
}

// PathBase returns the folder the node's relative path resolves against, which is
// also its working directory: Deploy.WorkingDir if set (itself relative to dir if
// not absolute), else dir.
func (n *Node) PathBase(dir string) string {
	wd := n.Deploy.WorkingDir
	switch {
	case wd == "":
		return dir
	case filepath.IsAbs(wd):
		return wd
	default:
		return filepath.Join(dir, wd)
	}
}

// IsBareName reports whether a node path is a bare name, without a slash.
func IsBareName(p string) bool {
	return p != "" && !strings.ContainsRune(p, '/') && !strings.ContainsRune(p, filepath.Separator)
}
