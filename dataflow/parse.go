package dataflow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// ParseFile reads, parses and validates the descriptor at path. Errors
// name the file as path was given; Descriptor.Path and Dir are absolute.
func ParseFile(path string) (*Descriptor, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("dataflow %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dataflow: %w", err)
	}
	d, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	d.Path = abs
	d.Dir = filepath.Dir(abs)
	return d, nil
}

// MaxSize is the largest descriptor accepted, in bytes: real ones are a few kilobytes,
// and the coordinator bounds the requests that carry them.
const MaxSize = 4 << 20

// Parse parses and validates a descriptor. filename is only used in
// error messages. On failure the error joins one *Error per problem.
func Parse(data []byte, filename string) (*Descriptor, error) {
	if len(data) > MaxSize {
		return nil, &Error{File: filename, Msg: fmt.Sprintf("descriptor is %.1f MiB, over the %d MiB limit", float64(len(data))/(1<<20), MaxSize>>20)}
	}
	root, err := document(data, filename)
	if err != nil {
		return nil, err
	}
	p := &problems{file: filename}
	d := p.descriptor(root)
	p.validate(d)
	if err := p.err(); err != nil {
		return nil, err
	}
	return d, nil
}

// document decodes the single YAML document in data.
func document(data []byte, filename string) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: filename, Msg: "empty descriptor: `nodes` is required"}
		}
		return nil, syntaxError(filename, err, data)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{File: filename, Line: extra.Line, Column: extra.Column,
			Msg: "more than one YAML document; a descriptor is a single document"}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(filename, err, data)
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, &Error{File: filename, Msg: "empty descriptor: `nodes` is required"}
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// descriptor reads the top-level mapping.
func (p *problems) descriptor(root *yaml.Node) *Descriptor {
	root = deref(root)
	d := &Descriptor{}
	if isNull(root) {
		p.add(root, "", "empty descriptor: `nodes` is required")
		return d
	}
	if root.Kind != yaml.MappingNode {
		p.add(root, "", "a descriptor must be a mapping with a `nodes` list, got %s", kindName(root))
		return d
	}
	var nodes, deployKey *yaml.Node
	for _, e := range p.mapping(root, "", "the descriptor", "field") {
		switch e.name {
		case "nodes":
			nodes = e.val
		case "deploy", "_unstable_deploy":
			if deployKey != nil {
				p.add(e.key, "", "both `deploy` and `_unstable_deploy` are set (first at line %d); use `deploy`", deployKey.Line)
				continue
			}
			deployKey = e.key
			d.Deploy = p.deploy(e.val, "", e.name)
		case "env":
			d.Env = p.env(e.val, "")
		case "communication", "_unstable_communication", "version", "name", "description",
			"debug", "_unstable_debug", "health_check_interval", "strict_types",
			"exit_when_nodes_finish", "type_rules":
			// Accepted for compatibility; they have no effect here.
		default:
			p.add(e.key, "", "unknown field %q%s", e.name, fieldHint(e.name, rootFields()))
		}
	}
	if nodes == nil {
		p.add(root, "", "missing required field `nodes`")
		return d
	}
	d.Nodes = p.nodeList(nodes)
	return d
}

// nodeList reads the `nodes` list.
func (p *problems) nodeList(v *yaml.Node) []*Node {
	v = deref(v)
	if v.Kind != yaml.SequenceNode {
		p.add(v, "", "`nodes` must be a non-empty list, got %s", kindName(v))
		return nil
	}
	if len(v.Content) == 0 {
		p.add(v, "", "`nodes` must not be empty")
		return nil
	}
	out := make([]*Node, 0, len(v.Content))
	for _, item := range v.Content {
		if n := p.node(item); n != nil {
			out = append(out, n)
		}
	}
	return out
}
