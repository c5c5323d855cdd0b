package dataflow

import (
	"slices"
	"strings"
)

// validate checks what involves more than one node: unique ids and
// inputs that name existing outputs.
func (p *problems) validate(d *Descriptor) {
	byID := make(map[string]*Node, len(d.Nodes))
	for _, n := range d.Nodes {
		if n.ID == "" {
			continue
		}
		if first, dup := byID[n.ID]; dup {
			p.addAt(n.Line, n.Column, n.ID, "duplicate node id: defined at line %d and line %d", first.Line, n.Line)
			continue
		}
		byID[n.ID] = n
	}
	for _, n := range d.Nodes {
		for _, in := range n.Inputs {
			if in.Source.Kind != SourceNode {
				continue
			}
			src := in.Source
			from, ok := byID[src.Node]
			switch {
			case !ok:
				p.addAt(in.Line, in.Column, n.ID, "input %q: source %q: there is no node %q", in.ID, src, src.Node)
			case from.operatorNode:
				p.addAt(in.Line, in.Column, n.ID, "input %q: source %q: node %q is an operator runtime node, which is not supported",
					in.ID, src, src.Node)
			case !from.HasOutput(src.Output) && len(from.Outputs) == 0:
				p.addAt(in.Line, in.Column, n.ID, "input %q: source %q: node %q has no outputs (list them under its `outputs:`)",
					in.ID, src, src.Node)
			case !from.HasOutput(src.Output):
				p.addAt(in.Line, in.Column, n.ID, "input %q: source %q: node %q has no output %q; its outputs are [%s]%s",
					in.ID, src, src.Node, src.Output, strings.Join(from.Outputs, " "), didYouMean(src.Output, from.Outputs))
			}
		}
	}
}

// HasOutput reports whether the node declares the output id.
func (n *Node) HasOutput(id string) bool {
	return slices.Contains(n.Outputs, id)
}
