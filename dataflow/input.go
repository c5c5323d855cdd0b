package dataflow

import (
	"sort"
	"strconv"

	"gopkg.in/yaml.v3"
)

// inputs reads the `inputs` mapping, sorted by input id.
func (p *problems) inputs(v *yaml.Node, id string) []Input {
	entries := p.mapping(v, id, "`inputs`", "input")
	out := make([]Input, 0, len(entries))
	for _, e := range entries {
		if e.name == "" {
			p.add(e.key, id, "input id must not be empty")
			continue
		}
		in := Input{ID: e.name, QueueSize: DefaultQueueSize, Line: e.key.Line, Column: e.key.Column}
		var ok bool
		switch {
		case e.val.Kind == yaml.MappingNode:
			ok = p.longInput(&in, e.key, e.val, id)
		case e.val.Kind == yaml.ScalarNode && !isNull(e.val):
			in.Source, ok = p.source(e.key, e.val, id, e.name)
		default:
			p.add(e.val, id, "input %q: expected a source such as node/output or a mapping with `source`, got %s",
				e.name, kindName(e.val))
		}
		if ok {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		return nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// longInput reads the long input form `{source, queue_size, input_timeout}`.
func (p *problems) longInput(in *Input, key, m *yaml.Node, id string) bool {
	var src *yaml.Node
	for _, e := range p.mapping(m, id, "input "+strconv.Quote(in.ID), "field") {
		switch e.name {
		case "source":
			src = e.val
		case "queue_size":
			if n := p.count(e.val, id, "queue_size", 1); n > 0 {
				in.QueueSize = n
			}
		case "input_timeout":
			in.Timeout = p.seconds(e.val, id, "input_timeout", true)
		default:
			p.add(e.key, id, "input %q: unknown field %q%s", in.ID, e.name, didYouMean(e.name, inputFields()))
		}
	}
	if src == nil {
		p.add(m, id, "input %q: missing required field `source`", in.ID)
		return false
	}
	if src.Kind != yaml.ScalarNode || isNull(src) {
		p.add(src, id, "input %q: `source` must be a string, got %s", in.ID, kindName(src))
		return false
	}
	var ok bool
	in.Source, ok = p.source(key, src, id, in.ID)
	return ok
}

// source parses a source scalar, reporting a malformed one at the
// position of the input id key.
func (p *problems) source(key, v *yaml.Node, id, input string) (Source, bool) {
	s, err := ParseSource(v.Value)
	if err != nil {
		p.add(key, id, "input %q: %v", input, err)
		return Source{}, false
	}
	return s, true
}
