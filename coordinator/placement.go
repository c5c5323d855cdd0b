package coordinator

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/doractl/doractl/dataflow"
	"github.com/doractl/doractl/proto"
)

// errNoDaemon is returned when no daemon can take any node.
var errNoDaemon = errors.New("no daemon connected")

// place chooses a daemon for every node:
//
//   - deploy.machine must equal the daemon's machine id, and deploy.labels must all be
//     among the daemon's labels (the dataflow-level deploy section applies to nodes that
//     set neither);
//   - a node with neither goes to the daemon on Config.DefaultMachine when that is set
//     (and nowhere else), else to the daemon on the coordinator's own machine if there is
//     one, else to the only daemon if there is just one. With several daemons and none on
//     the coordinator's machine such a node is an error: an arbitrary choice would put it
//     on whichever robot sorts first.
//
// With Config.OneMachine and a single daemon, every node goes there.
//
// Nothing is spawned when any node cannot be placed: the error names every such node and
// lists the machines that exist.
func (s *Server) place(desc *dataflow.Descriptor) (map[string]*session, error) {
	cands := s.placeable()
	if len(cands) == 0 {
		return nil, errNoDaemon
	}
	out := make(map[string]*session, len(desc.Nodes))
	if s.cfg.OneMachine && len(cands) == 1 {
		for _, n := range desc.Nodes {
			out[n.ID] = cands[0]
		}
		return out, nil
	}
	var problems []string
	var orphans []string // nodes with no deploy section and no default daemon
	for _, n := range desc.Nodes {
		dep := n.Deploy
		if dep.Machine == "" && len(dep.Labels) == 0 {
			dep.Machine, dep.Labels = desc.Deploy.Machine, desc.Deploy.Labels
		}
		if dep.Machine == "" && len(dep.Labels) == 0 && s.cfg.DefaultMachine != "" {
			dep.Machine = s.cfg.DefaultMachine
		}
		sess := s.pick(cands, dep)
		if sess == nil {
			if dep.Machine == "" && len(dep.Labels) == 0 {
				orphans = append(orphans, fmt.Sprintf("%q", n.ID))
			} else {
				problems = append(problems, fmt.Sprintf("node %q: no daemon %s%s", n.ID, wanted(dep), s.machineAbsence(dep.Machine, cands)))
			}
			continue
		}
		out[n.ID] = sess
	}
	if len(orphans) > 0 {
		what := "node " + orphans[0]
		if len(orphans) > 1 {
			what = "nodes " + strings.Join(orphans, ", ")
		}
		problems = append(problems, fmt.Sprintf("%s: no deploy.machine, and no daemon on the coordinator's machine %q (set deploy.machine, or --default-machine on the coordinator)", what, s.cfg.Machine))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("cannot place %s (machines: %s)", strings.Join(problems, "; "), describeMachines(cands))
	}
	return out, nil
}

// machineAbsence says why the daemons known on machine, other than the candidates,
// cannot take nodes (" (daemon "D" was confirmed dead at T)"), or "" when none is.
func (s *Server) machineAbsence(machine string, cands []*session) string {
	if machine == "" {
		return ""
	}
	var why []string
	for _, d := range s.knownDaemons() {
		placeable := slices.ContainsFunc(cands, func(c *session) bool { return c.info.Name == d.Name })
		if d.Machine == machine && !placeable {
			why = append(why, s.absence(d.Name))
		}
	}
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}

// placeable lists the connected daemons that are not dead or gone, alive ones first,
// then by name.
func (s *Server) placeable() []*session {
	var alive, other []*session
	for _, sess := range s.connected() {
		switch s.live.verdict(sess.info.Name) {
		case proto.MemberDead, proto.MemberLeft:
		case proto.MemberAlive:
			alive = append(alive, sess)
		default:
			other = append(other, sess)
		}
	}
	return append(alive, other...)
}

// pick returns the daemon for one node's deploy section, or nil.
func (s *Server) pick(cands []*session, dep dataflow.Deploy) *session {
	if dep.Machine == "" && len(dep.Labels) == 0 {
		for _, c := range cands {
			if c.info.Machine == s.cfg.Machine {
				return c
			}
		}
		if len(cands) == 1 {
			return cands[0]
		}
		return nil
	}
	for _, c := range cands {
		if dep.Machine != "" && c.info.Machine != dep.Machine {
			continue
		}
		if !hasLabels(c.info.Labels, dep.Labels) {
			continue
		}
		return c
	}
	return nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// wanted describes a deploy constraint: `on machine "m" with labels a=b`.
func wanted(dep dataflow.Deploy) string {
	var parts []string
	if dep.Machine != "" {
		parts = append(parts, fmt.Sprintf("on machine %q", dep.Machine))
	}
	if len(dep.Labels) > 0 {
		parts = append(parts, "with labels "+formatLabels(dep.Labels))
	}
	return strings.Join(parts, " ")
}

func formatLabels(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

// describeMachines lists the candidates' machines: `robot-a (daemon-a, gpu=true), robot-b`.
func describeMachines(cands []*session) string {
	sorted := slices.Clone(cands)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].info.Machine < sorted[j].info.Machine })
	parts := make([]string, 0, len(sorted))
	for _, c := range sorted {
		p := c.info.Machine
		var extra []string
		if c.info.Name != c.info.Machine {
			extra = append(extra, "daemon "+c.info.Name)
		}
		if len(c.info.Labels) > 0 {
			extra = append(extra, "labels "+formatLabels(c.info.Labels))
		}
		if len(extra) > 0 {
			p += " (" + strings.Join(extra, ", ") + ")"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}
