package dataflow

import (
	"errors"
	"strings"
	"testing"
)

// wantErr describes one expected *Error. line and col 0 mean "no
// position"; msg must be a substring of Msg.
type wantErr struct {
	line, col int
	node      string
	msg       string
}

// Every field the "did you mean" lists name is one the parser accepts.
func TestSuggestedFieldsParse(t *testing.T) {
	value := func(field string) string {
		switch field {
		case "nodes":
			return "\n  - id: n\n    path: ./n"
		case "deploy", "_unstable_deploy":
			return " {machine: m}"
		case "env", "input_types", "output_types", "labels", "communication", "_unstable_communication", "debug", "_unstable_debug", "type_rules":
			return " {}"
		case "inputs":
			return " {}"
		case "outputs", "args":
			return " []"
		case "max_restarts", "queue_size", "health_check_interval", "restart_delay", "max_restart_delay", "restart_window", "health_check_timeout", "input_timeout":
			return " 1"
		case "restart_policy":
			return " never"
		case "strict_types", "exit_when_nodes_finish":
			return " true"
		}
		return " x"
	}
	check := func(field, src string) {
		t.Helper()
		if _, err := Parse([]byte(src), "test.yml"); err != nil && strings.Contains(err.Error(), "unknown field") {
			t.Errorf("listed field %q is refused: %v", field, err)
		}
	}
	for _, f := range rootFields() {
		if f != "nodes" {
			check(f, "nodes:\n  - id: n\n    path: ./n\n"+f+":"+value(f)+"\n")
		}
	}
	for _, f := range nodeFields() {
		if f != "id" && f != "path" {
			check(f, "nodes:\n  - id: n\n    path: ./n\n    "+f+":"+value(f)+"\n")
		}
	}
	for _, f := range inputFields() {
		src := "nodes:\n  - id: t\n    path: ./t\n    outputs: [o]\n  - id: n\n    path: ./n\n    inputs:\n      i:\n        source: t/o\n"
		if f != "source" {
			src += "        " + f + ":" + value(f) + "\n"
		}
		check(f, src)
	}
	for _, f := range deployFields() {
		v := value(f)
		if f == "labels" {
			v = " {a: b}"
		}
		check(f, "nodes:\n  - id: n\n    path: ./n\n    deploy:\n      "+f+":"+v+"\n")
	}
}

func TestDidYouMean(t *testing.T) {
	known := nodeFields()
	for name, want := range map[string]string{
		"ouputs":         `; did you mean "outputs"?`,
		"input":          `; did you mean "inputs"?`,
		"restart_polcy":  `; did you mean "restart_policy"?`,
		"foo":            "",
		"ab":             "",
		"completely_new": "",
	} {
		if got := didYouMean(name, known); got != want {
			t.Errorf("didYouMean(%q) = %q, want %q", name, got, want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance(kitten, sitting) = %d", d)
	}
	if d := editDistance("ab", "ba"); d != 1 {
		t.Errorf("editDistance(ab, ba) = %d", d)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []wantErr
		text string // if set, the exact Error() of the first error
	}{
		{
			name: "unknown node field",
			src: `nodes:
  - id: a
    path: ./a
    foo: 1
`,
			want: []wantErr{{4, 5, "a", `unknown field "foo"`}},
			text: `test.yml:4:5: node "a": unknown field "foo"`,
		},
		{
			name: "unknown top-level field",
			src: `nodes:
  - id: a
    path: ./a
bogus: 1
`,
			want: []wantErr{{4, 1, "", `unknown field "bogus"`}},
			text: `test.yml:4:1: unknown field "bogus"`,
		},
		{
			name: "misspelt node field",
			src: `nodes:
  - id: a
    path: ./a
    ouputs: [x]
`,
			want: []wantErr{{4, 5, "a", `unknown field "ouputs"; did you mean "outputs"?`}},
			text: `test.yml:4:5: node "a": unknown field "ouputs"; did you mean "outputs"?`,
		},
		{
			name: "misspelt top-level field",
			src: `node:
  - id: a
    path: ./a
`,
			want: []wantErr{
				{1, 1, "", `unknown field "node"; did you mean "nodes"?`},
				{1, 1, "", "missing required field `nodes`"},
			},
		},
		{
			name: "deploy field outside deploy",
			src: `working_dir: /srv
nodes:
  - id: a
    path: ./a
    machine: robot-a
`,
			want: []wantErr{
				{1, 1, "", "unknown field \"working_dir\"; \"working_dir\" belongs under `deploy:`"},
				{5, 5, "a", "unknown field \"machine\"; \"machine\" belongs under `deploy:`"},
			},
		},
		{
			name: "misspelt deploy and input fields",
			src: `nodes:
  - id: a
    path: ./a
    _unstable_deploy:
      machin: robot-a
    inputs:
      tick:
        source: dora/timer/millis/100
        queue_sise: 2
`,
			want: []wantErr{
				{5, 7, "a", "unknown field \"machin\" in `_unstable_deploy`; did you mean \"machine\"?"},
				{9, 9, "a", `input "tick": unknown field "queue_sise"; did you mean "queue_size"?`},
			},
		},
		{
			name: "source without outputs",
			src: `nodes:
  - id: a
    path: ./a
  - id: b
    path: ./b
    inputs:
      x: a/out
`,
			want: []wantErr{{7, 7, "b", "input \"x\": source \"a/out\": node \"a\" has no outputs (list them under its `outputs:`)"}},
		},
		{
			name: "duplicate node ids",
			src: `nodes:
  - id: a
    path: ./a
  - id: b
    path: ./b
  - id: a
    path: ./a2
`,
			want: []wantErr{{6, 5, "a", "duplicate node id: defined at line 2 and line 6"}},
		},
		{
			name: "missing source node",
			src: `nodes:
  - id: a
    path: ./a
    inputs:
      x: ghost/out
`,
			want: []wantErr{{5, 7, "a", `input "x": source "ghost/out": there is no node "ghost"`}},
		},
		{
			name: "missing source output",
			src: `nodes:
  - id: a
    path: ./a
    outputs: [one, two]
  - id: b
    path: ./b
    inputs:
      x: a/three
`,
			want: []wantErr{{8, 7, "b", `input "x": source "a/three": node "a" has no output "three"; its outputs are [one two]`}},
			text: `test.yml:8:7: node "b": input "x": source "a/three": node "a" has no output "three"; its outputs are [one two]`,
		},
		{
			name: "bad timers",
			src: `nodes:
  - id: t
    path: ./t
    inputs:
      a: dora/timer/millis/0
      b: dora/timer/hours/1
      c: dora/timer/millis/abc
      d: dora/timer/secs/-1
      e: dora/tick
      f: dora/timer/millis/99999999999999999999
`,
			want: []wantErr{
				{5, 7, "t", `input "a": timer "dora/timer/millis/0": interval must be a positive integer`},
				{6, 7, "t", `input "b": timer "dora/timer/hours/1": unit must be millis or secs`},
				{7, 7, "t", `input "c": timer "dora/timer/millis/abc": interval must be a positive integer`},
				{8, 7, "t", `input "d": timer "dora/timer/secs/-1": interval must be a positive integer`},
				{9, 7, "t", `input "e": unknown dora source "dora/tick"`},
				{10, 7, "t", `input "f": timer "dora/timer/millis/99999999999999999999"`},
			},
			text: `test.yml:5:7: node "t": input "a": timer "dora/timer/millis/0": interval must be a positive integer, got "0"`,
		},
		{
			name: "malformed sources",
			src: `nodes:
  - id: a
    path: ./a
    outputs: [o]
    inputs:
      x: a
      y: a/
      z: a/op/o
      w: ""
`,
			want: []wantErr{
				{6, 7, "a", `input "x": source "a" must have the form node/output`},
				{7, 7, "a", `input "y": source "a/" must have the form node/output`},
				{8, 7, "a", `refers to output "o" of operator "op" in node "a"; operators are not supported`},
				{9, 7, "a", `input "w": empty source`},
			},
		},
		{
			name: "long-form input errors",
			src: `nodes:
  - id: a
    path: ./a
    outputs: [o]
    inputs:
      x:
        queue_size: 2
      y:
        source: a/o
        queue_size: 0
        input_timeout: -1
        colour: red
      z: [a/o]
`,
			want: []wantErr{
				{7, 9, "a", `input "x": missing required field ` + "`source`"},
				{10, 21, "a", "`queue_size` must be at least 1, got 0"},
				{11, 24, "a", "`input_timeout` must be a positive number of seconds, got -1"},
				{12, 9, "a", `input "y": unknown field "colour"`},
				{13, 10, "a", `input "z": expected a source such as node/output or a mapping with ` + "`source`, got a list"},
			},
		},
		{
			name: "both deploy keys",
			src: `nodes:
  - id: a
    path: ./a
    deploy:
      machine: A
    _unstable_deploy:
      machine: B
`,
			want: []wantErr{{6, 5, "a", "both `deploy` and `_unstable_deploy` are set (first at line 4)"}},
		},
		{
			name: "bad deploy fields",
			src: `nodes:
  - id: a
    path: ./a
    deploy:
      machine: A
      cpu: 3
      labels: [gpu]
`,
			want: []wantErr{
				{6, 7, "a", "unknown field \"cpu\" in `deploy`"},
				{7, 15, "a", "`deploy.labels` must be a mapping, got a list"},
			},
		},
		{
			name: "operator and custom nodes",
			src: `nodes:
  - id: op
    operator:
      python: x.py
  - id: c
    custom:
      source: ./c
  - id: user
    path: ./u
    inputs:
      x: op/out
`,
			want: []wantErr{
				{2, 5, "op", "operators are not supported (shared-library/python/wasm); run the operator logic as a node"},
				{5, 5, "c", "the `custom` node form is not supported; use path/args/inputs/outputs"},
				{11, 7, "user", `node "op" is an operator runtime node, which is not supported`},
			},
		},
		{
			name: "id and path rules",
			src: `nodes:
  - path: ./a
  - id: x/y
    path: ./b
  - id: nopath
  - id: ""
    path: ./e
  - id: emptypath
    path: ~
`,
			want: []wantErr{
				{2, 5, "", "missing required field `id`"},
				{3, 9, "x/y", "node id must not contain '/'"},
				{5, 5, "nopath", "missing required field `path`"},
				{6, 9, "", "`id` must not be empty"},
				{9, 11, "emptypath", "`path` must not be empty"},
			},
		},
		{
			name: "outputs and input ids",
			src: `nodes:
  - id: a
    path: ./a
    outputs: [x, x, "p/q", ""]
    inputs:
      "": dora/timer/millis/1
      ? [k]
      : a/x
`,
			want: []wantErr{
				{4, 18, "a", `duplicate output "x" (first at line 4)`},
				{4, 21, "a", `output id "p/q" must not contain '/'`},
				{4, 28, "a", "output id must not be empty"},
				{6, 7, "a", "input id must not be empty"},
				{7, 9, "a", "`inputs`: keys must be strings, got a list"},
			},
		},
		{
			name: "duplicate keys",
			src: `nodes:
  - id: a
    path: ./a
    path: ./b
    outputs: [o]
    inputs:
      x: a/o
      x: a/o
`,
			want: []wantErr{
				{4, 5, "a", `duplicate field "path" (first at line 3)`},
				{8, 7, "a", `duplicate input "x" (first at line 7)`},
			},
		},
		{
			name: "field types",
			src: `nodes:
  - id: a
    path: [./a]
    env:
      A: [1]
      B: ~
    args: '--x "unterminated'
    restart_policy: sometimes
    restart_delay: -0.5
    max_restarts: 1.5
    health_check_timeout: 0
    restart_window: .nan
    outputs: o
    input_types: x
`,
			want: []wantErr{
				{3, 11, "a", "`path` must be a string, got a list"},
				{5, 10, "a", "`env`: variable \"A\" must be a string, number or bool, got a list"},
				{6, 10, "a", "`env`: variable \"B\" must be a string, number or bool, got null"},
				{7, 11, "a", "`args`: unterminated double quote"},
				{8, 21, "a", "`restart_policy` must be one of never, on-failure or always, got \"sometimes\""},
				{9, 20, "a", "`restart_delay` must be a non-negative number of seconds, got -0.5"},
				{10, 19, "a", "`max_restarts` must be an integer, got a number"},
				{11, 27, "a", "`health_check_timeout` must be a positive number of seconds, got 0"},
				{12, 21, "a", "`restart_window` must be a finite number of seconds"},
				{13, 14, "a", "`outputs` must be a list, got a string"},
				{14, 18, "a", "`input_types` must be a mapping, got a string"},
			},
		},
		{
			name: "git revisions",
			src: `nodes:
  - id: a
    path: ./a
    branch: main
  - id: b
    path: ./b
    git: https://example.com/b.git
    branch: main
    tag: v1
`,
			want: []wantErr{
				{2, 5, "a", "`branch` requires `git`"},
				{5, 5, "b", "only one of `branch`, `tag` and `rev` may be set, got `branch` and `tag`"},
			},
		},
		{
			name: "malformed YAML",
			src: `nodes:
  - id: a
    path: "unterminated
`,
			want: []wantErr{{3, 0, "", "invalid YAML: found unexpected end of stream"}},
			text: "test.yml:3: invalid YAML: found unexpected end of stream",
		},
		{
			name: "tab indentation",
			src:  "nodes:\n  - id: a\n\tpath: x\n",
			want: []wantErr{{3, 0, "", "invalid YAML: found a tab character"}},
		},
		{
			name: "mis-indented key names its own line",
			src:  "nodes:\n  - id: a\n    path: /bin/true\n   inputs: [\n",
			want: []wantErr{{4, 0, "", "invalid YAML: did not find expected '-' indicator"}},
			text: "test.yml:4: invalid YAML: did not find expected '-' indicator",
		},
		{
			name: "two documents",
			src:  "nodes:\n  - id: a\n    path: ./a\n---\nnodes: []\n",
			want: []wantErr{{4, 1, "", "more than one YAML document"}},
		},
		{
			name: "empty file",
			src:  "",
			want: []wantErr{{0, 0, "", "empty descriptor: `nodes` is required"}},
			text: "test.yml: empty descriptor: `nodes` is required",
		},
		{
			name: "only comments",
			src:  "# nothing here\n",
			want: []wantErr{{0, 0, "", "empty descriptor"}},
		},
		{
			name: "null document",
			src:  "~\n",
			want: []wantErr{{1, 1, "", "empty descriptor"}},
		},
		{
			name: "top level is a list",
			src:  "- id: a\n",
			want: []wantErr{{1, 1, "", "a descriptor must be a mapping with a `nodes` list, got a list"}},
		},
		{
			name: "nodes missing",
			src:  "name: x\n",
			want: []wantErr{{1, 1, "", "missing required field `nodes`"}},
		},
		{
			name: "nodes not a list",
			src:  "nodes:\n  a: {path: ./a}\n",
			want: []wantErr{{2, 3, "", "`nodes` must be a non-empty list, got a mapping"}},
		},
		{
			name: "nodes null",
			src:  "nodes:\n",
			want: []wantErr{{1, 7, "", "`nodes` must be a non-empty list, got null"}},
		},
		{
			name: "nodes empty",
			src:  "nodes: []\n",
			want: []wantErr{{1, 8, "", "`nodes` must not be empty"}},
		},
		{
			name: "node not a mapping",
			src:  "nodes:\n  - ./a\n",
			want: []wantErr{{2, 5, "", "a node must be a mapping, got a string"}},
		},
		{
			name: "both top-level deploy keys",
			src: `deploy: {machine: A}
_unstable_deploy: {machine: B}
nodes: [{id: a, path: ./a}]
`,
			want: []wantErr{{2, 1, "", "both `deploy` and `_unstable_deploy` are set (first at line 1)"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.src), "test.yml")
			if err == nil {
				t.Fatalf("Parse accepted the descriptor (nodes %v)", nodeIDs(d))
			}
			if d != nil {
				t.Errorf("Parse returned a descriptor along with an error")
			}
			got := Errors(err)
			if len(got) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				if i >= len(got) {
					break
				}
				g := got[i]
				if g.File != "test.yml" || g.Line != w.line || g.Column != w.col || g.Node != w.node ||
					!strings.Contains(g.Msg, w.msg) {
					t.Errorf("error %d = {%d:%d node %q msg %q}\n      want {%d:%d node %q msg containing %q}",
						i, g.Line, g.Column, g.Node, g.Msg, w.line, w.col, w.node, w.msg)
				}
			}
			if tt.text != "" && len(got) > 0 && got[0].Error() != tt.text {
				t.Errorf("Error() = %q\n     want %q", got[0].Error(), tt.text)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "f.yml", Line: 3, Column: 7, Node: "cam", Msg: "bad"}, `f.yml:3:7: node "cam": bad`},
		{Error{File: "f.yml", Line: 3, Msg: "bad"}, "f.yml:3: bad"},
		{Error{File: "f.yml", Msg: "bad"}, "f.yml: bad"},
		{Error{Line: 3, Column: 7, Msg: "bad"}, "3:7: bad"},
		{Error{Node: "cam", Msg: "bad"}, `node "cam": bad`},
		{Error{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestErrorsUnwrapsJoined(t *testing.T) {
	a := &Error{Msg: "a"}
	b := &Error{Msg: "b"}
	err := errors.Join(a, errors.Join(b, errors.New("other")))
	got := Errors(err)
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("Errors = %v, want [a b]", got)
	}
	if Errors(nil) != nil {
		t.Error("Errors(nil) is not nil")
	}
	var e *Error
	if _, perr := Parse([]byte("nodes: []"), "x.yml"); !errors.As(perr, &e) || e.File != "x.yml" {
		t.Errorf("errors.As(*Error) failed on %v", perr)
	}
}
