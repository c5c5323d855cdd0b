package dataflow

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// Messages for node forms that are recognised but not supported.
const (
	msgOperators = "operators are not supported (shared-library/python/wasm); run the operator logic as a node"
	msgCustom    = "the `custom` node form is not supported; use path/args/inputs/outputs"
)

// node reads one entry of the `nodes` list; it returns nil if the entry
// is not a mapping.
func (p *problems) node(m *yaml.Node) *Node {
	m = deref(m)
	if m.Kind != yaml.MappingNode {
		p.add(m, "", "a node must be a mapping, got %s", kindName(m))
		return nil
	}
	n := &Node{Line: m.Line, Column: m.Column}
	id := peekID(m)
	var (
		idNode, pathNode, deployKey *yaml.Node
		unsupported                 string
	)
	for _, e := range p.mapping(m, id, "a node", "field") {
		if dst := n.stringField(e.name); dst != nil {
			*dst = p.str(e.val, id, e.name)
			switch e.name {
			case "id":
				idNode = e.val
			case "path":
				pathNode = e.val
			}
			continue
		}
		switch e.name {
		case "args":
			n.Args = p.args(e.val, id)
		case "env":
			n.Env = p.env(e.val, id)
		case "inputs":
			n.Inputs = p.inputs(e.val, id)
		case "outputs":
			n.Outputs = p.outputs(e.val, id)
		case "deploy", "_unstable_deploy":
			if deployKey != nil {
				p.add(e.key, id, "both `deploy` and `_unstable_deploy` are set (first at line %d); use `deploy`", deployKey.Line)
				continue
			}
			deployKey = e.key
			n.Deploy = p.deploy(e.val, id, e.name)
		case "restart_policy":
			n.RestartPolicy = p.restartPolicy(e.val, id)
		case "max_restarts":
			n.MaxRestarts = p.count(e.val, id, e.name, 0)
		case "restart_delay":
			n.RestartDelay = p.seconds(e.val, id, e.name, false)
		case "max_restart_delay":
			n.MaxRestartDelay = p.seconds(e.val, id, e.name, false)
		case "restart_window":
			n.RestartWindow = p.seconds(e.val, id, e.name, false)
		case "health_check_timeout":
			n.HealthCheckTimeout = p.seconds(e.val, id, e.name, true)
		case "input_types":
			n.InputTypes = p.stringMap(e.val, id, e.name, "input")
		case "output_types":
			n.OutputTypes = p.stringMap(e.val, id, e.name, "output")
		case "operator", "operators":
			unsupported = msgOperators
		case "custom":
			unsupported = msgCustom
		default:
			p.add(e.key, id, "unknown field %q%s", e.name, fieldHint(e.name, nodeFields()))
		}
	}
	p.checkID(n, m, idNode)
	switch {
	case unsupported != "":
		p.add(m, n.ID, "%s", unsupported)
		n.operatorNode = true
	case pathNode == nil:
		p.add(m, n.ID, "missing required field `path`")
	case n.Path == "" && pathNode.Kind == yaml.ScalarNode:
		p.add(pathNode, n.ID, "`path` must not be empty")
	}
	p.checkGit(n, m)
	if n.SendStdoutAs != "" && !n.HasOutput(n.SendStdoutAs) {
		n.Outputs = append(n.Outputs, n.SendStdoutAs)
	}
	return n
}

// stringField returns the Node field that holds the plain string field
// name, or nil.
func (n *Node) stringField(name string) *string {
	switch name {
	case "id":
		return &n.ID
	case "name":
		return &n.Name
	case "description":
		return &n.Description
	case "path":
		return &n.Path
	case "build":
		return &n.Build
	case "git":
		return &n.Git
	case "rev":
		return &n.Rev
	case "branch":
		return &n.Branch
	case "tag":
		return &n.Tag
	case "send_stdout_as":
		return &n.SendStdoutAs
	}
	return nil
}

// peekID returns the id of a node mapping as written, so that problems
// found before the `id` key is read can name the node.
func peekID(m *yaml.Node) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Value == "id" && v.Kind == yaml.ScalarNode && !isNull(v) {
			return v.Value
		}
	}
	return ""
}

// checkID checks the node id itself; uniqueness is checked in validate.
func (p *problems) checkID(n *Node, m, idNode *yaml.Node) {
	switch {
	case idNode == nil:
		p.add(m, "", "missing required field `id`")
	case n.ID == "" && idNode.Kind == yaml.ScalarNode:
		p.add(idNode, "", "`id` must not be empty")
	case strings.Contains(n.ID, "/"):
		p.add(idNode, n.ID, "node id must not contain '/'")
	}
}

// checkGit checks that branch, tag and rev come with git, one at most.
func (p *problems) checkGit(n *Node, m *yaml.Node) {
	var set []string
	for _, f := range []struct{ name, val string }{
		{"branch", n.Branch}, {"tag", n.Tag}, {"rev", n.Rev},
	} {
		if f.val != "" {
			set = append(set, "`"+f.name+"`")
		}
	}
	switch {
	case len(set) > 0 && n.Git == "":
		p.add(m, n.ID, "%s requires `git`", strings.Join(set, " and "))
	case len(set) > 1:
		p.add(m, n.ID, "only one of `branch`, `tag` and `rev` may be set, got %s", strings.Join(set, " and "))
	}
}

// restartPolicy reads `restart_policy`.
func (p *problems) restartPolicy(v *yaml.Node, id string) string {
	if isNull(v) {
		return ""
	}
	s := p.str(v, id, "restart_policy")
	switch s {
	case RestartNever, RestartOnFailure, RestartAlways:
		return s
	}
	if v.Kind == yaml.ScalarNode {
		p.add(v, id, "`restart_policy` must be one of %s, %s or %s, got %q",
			RestartNever, RestartOnFailure, RestartAlways, s)
	}
	return ""
}

// args reads `args`: a shell-style string or a list of strings.
func (p *problems) args(v *yaml.Node, id string) []string {
	v = deref(v)
	switch {
	case isNull(v):
		return nil
	case v.Kind == yaml.ScalarNode:
		words, err := SplitArgs(v.Value)
		if err != nil {
			p.add(v, id, "`args`: %v", err)
		}
		return words
	case v.Kind == yaml.SequenceNode:
		out := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			item = deref(item)
			text, ok := scalarText(item)
			if !ok {
				p.add(item, id, "`args` items must be strings, got %s", kindName(item))
				continue
			}
			out = append(out, text)
		}
		return out
	}
	p.add(v, id, "`args` must be a string or a list of strings, got %s", kindName(v))
	return nil
}

// env reads an `env` mapping, turning numbers and booleans into text.
func (p *problems) env(v *yaml.Node, id string) map[string]string {
	return p.stringMap(v, id, "env", "variable")
}

// outputs reads the `outputs` list.
func (p *problems) outputs(v *yaml.Node, id string) []string {
	v = deref(v)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v, id, "`outputs` must be a list, got %s", kindName(v))
		return nil
	}
	seen := make(map[string]*yaml.Node, len(v.Content))
	out := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		item = deref(item)
		if item.Kind != yaml.ScalarNode || isNull(item) {
			p.add(item, id, "output ids must be strings, got %s", kindName(item))
			continue
		}
		name := item.Value
		switch first, dup := seen[name]; {
		case name == "":
			p.add(item, id, "output id must not be empty")
		case strings.Contains(name, "/"):
			p.add(item, id, "output id %q must not contain '/'", name)
		case dup:
			p.add(item, id, "duplicate output %q (first at line %d)", name, first.Line)
		default:
			seen[name] = item
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// deploy reads a `deploy` or `_unstable_deploy` mapping.
func (p *problems) deploy(v *yaml.Node, id, key string) Deploy {
	var d Deploy
	for _, e := range p.mapping(v, id, "`"+key+"`", "field") {
		switch e.name {
		case "machine":
			d.Machine = p.str(e.val, id, key+".machine")
		case "working_dir":
			d.WorkingDir = p.str(e.val, id, key+".working_dir")
		case "labels":
			d.Labels = p.stringMap(e.val, id, key+".labels", "label")
		default:
			p.add(e.key, id, "unknown field %q in `%s`%s", e.name, key, didYouMean(e.name, deployFields()))
		}
	}
	return d
}
