package dataflow

import (
	"math"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// YAML core tags as reported by yaml.Node.ShortTag.
const (
	tagNull  = "!!null"
	tagBool  = "!!bool"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagStr   = "!!str"
)

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// isNull reports whether n is absent or an explicit YAML null.
func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == tagNull)
}

// kindName describes a YAML node for error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case tagNull:
			return "null"
		case tagBool:
			return "a bool"
		case tagInt, tagFloat:
			return "a number"
		}
		return "a string"
	}
	return "an unexpected YAML node"
}

// entry is one key/value pair of a YAML mapping.
type entry struct {
	name     string
	key, val *yaml.Node
}

// scalarText returns the text of a string, number or bool scalar the way
// dora prints it: numbers in plain decimal and booleans as true/false.
func scalarText(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		return "", false
	}
	switch n.ShortTag() {
	case tagBool:
		var b bool
		if n.Decode(&b) != nil {
			return "", false
		}
		return strconv.FormatBool(b), true
	case tagInt:
		var v any
		if n.Decode(&v) != nil {
			return "", false
		}
		switch x := v.(type) {
		case int:
			return strconv.Itoa(x), true
		case int64:
			return strconv.FormatInt(x, 10), true
		case uint64:
			return strconv.FormatUint(x, 10), true
		}
		return n.Value, true
	case tagFloat:
		var f float64
		if n.Decode(&f) != nil {
			return "", false
		}
		return strconv.FormatFloat(f, 'f', -1, 64), true
	case tagNull:
		return "", false
	}
	return n.Value, true
}

// mapping returns the entries of m, reporting a non-mapping value, keys
// that are not scalars and repeated keys. A null m is an empty mapping.
// what names the mapping and keyword its keys in messages.
func (p *problems) mapping(m *yaml.Node, nodeID, what, keyword string) []entry {
	m = deref(m)
	if isNull(m) {
		return nil
	}
	if m.Kind != yaml.MappingNode {
		p.add(m, nodeID, "%s must be a mapping, got %s", what, kindName(m))
		return nil
	}
	seen := make(map[string]*yaml.Node, len(m.Content)/2)
	out := make([]entry, 0, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), deref(m.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(k, nodeID, "%s: keys must be strings, got %s", what, kindName(k))
			continue
		}
		name := k.Value
		if k.ShortTag() == tagNull {
			name = ""
		}
		if first, dup := seen[name]; dup {
			p.add(k, nodeID, "duplicate %s %q (first at line %d)", keyword, name, first.Line)
			continue
		}
		seen[name] = k
		out = append(out, entry{name: name, key: k, val: v})
	}
	return out
}

// str reads a string field. Numbers and booleans are taken as written;
// null is the empty string.
func (p *problems) str(v *yaml.Node, nodeID, field string) string {
	if isNull(v) {
		return ""
	}
	if v.Kind != yaml.ScalarNode {
		p.add(v, nodeID, "`%s` must be a string, got %s", field, kindName(v))
		return ""
	}
	return v.Value
}

// stringMap reads a mapping of strings to strings; scalar values are
// converted with scalarText.
func (p *problems) stringMap(v *yaml.Node, nodeID, field, keyword string) map[string]string {
	entries := p.mapping(v, nodeID, "`"+field+"`", keyword)
	if len(entries) == 0 {
		return nil
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		text, ok := scalarText(e.val)
		if !ok {
			p.add(e.val, nodeID, "`%s`: %s %q must be a string, number or bool, got %s",
				field, keyword, e.name, kindName(e.val))
			continue
		}
		out[e.name] = text
	}
	return out
}

// count reads an integer of at least least.
func (p *problems) count(v *yaml.Node, nodeID, field string, least int64) int {
	if isNull(v) {
		return 0
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != tagInt {
		p.add(v, nodeID, "`%s` must be an integer, got %s", field, kindName(v))
		return 0
	}
	var x int64
	if err := v.Decode(&x); err != nil || x > math.MaxInt32 {
		p.add(v, nodeID, "`%s` is out of range: %s", field, v.Value)
		return 0
	}
	if x < least {
		p.add(v, nodeID, "`%s` must be at least %d, got %d", field, least, x)
		return 0
	}
	return int(x)
}

// seconds reads a duration written as a number of seconds. If positive
// is set, zero is rejected as well as negative values.
func (p *problems) seconds(v *yaml.Node, nodeID, field string, positive bool) time.Duration {
	if isNull(v) {
		return 0
	}
	tag := v.ShortTag()
	if v.Kind != yaml.ScalarNode || (tag != tagInt && tag != tagFloat) {
		p.add(v, nodeID, "`%s` must be a number of seconds, got %s", field, kindName(v))
		return 0
	}
	var f float64
	if err := v.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.add(v, nodeID, "`%s` must be a finite number of seconds, got %s", field, v.Value)
		return 0
	}
	if f < 0 || (positive && f == 0) {
		qualifier := "non-negative"
		if positive {
			qualifier = "positive"
		}
		p.add(v, nodeID, "`%s` must be a %s number of seconds, got %s", field, qualifier, v.Value)
		return 0
	}
	ns := math.Round(f * float64(time.Second))
	if ns >= math.MaxInt64 {
		p.add(v, nodeID, "`%s` is too large: %s seconds", field, v.Value)
		return 0
	}
	return time.Duration(ns)
}
