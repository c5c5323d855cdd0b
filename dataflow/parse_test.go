package dataflow

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseAccepted(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, d *Descriptor)
	}{
		{
			name: "long-form inputs",
			src: `nodes:
  - id: src
    path: ./src
    outputs: [frames]
  - id: dst
    path: ./dst
    inputs:
      frames:
        source: src/frames
        queue_size: 3
        input_timeout: 1.5
      tick: {source: dora/timer/secs/2, queue_size: 1}
      plain: src/frames
`,
			check: func(t *testing.T, d *Descriptor) {
				want := []Input{
					{ID: "frames", Source: Source{Kind: SourceNode, Node: "src", Output: "frames"},
						QueueSize: 3, Timeout: 1500 * time.Millisecond, Line: 8, Column: 7},
					{ID: "plain", Source: Source{Kind: SourceNode, Node: "src", Output: "frames"},
						QueueSize: DefaultQueueSize, Line: 13, Column: 7},
					{ID: "tick", Source: Source{Kind: SourceTimer, Interval: 2 * time.Second},
						QueueSize: 1, Line: 12, Column: 7},
				}
				if got := mustNode(t, d, "dst").Inputs; !slices.Equal(got, want) {
					t.Errorf("inputs =\n%+v\nwant\n%+v", got, want)
				}
				wantSubs := []Subscriber{{"dst", "frames", 3}, {"dst", "plain", DefaultQueueSize}}
				if got := d.Consumers("src", "frames"); !slices.Equal(got, wantSubs) {
					t.Errorf("Consumers = %v, want %v", got, wantSubs)
				}
				if got := d.Consumers("src", "other"); got != nil {
					t.Errorf("Consumers of an unused output = %v", got)
				}
				if got := d.Timers(); !slices.Equal(got, []time.Duration{2 * time.Second}) {
					t.Errorf("Timers = %v", got)
				}
			},
		},
		{
			name: "env value types",
			src: `env:
  GLOBAL: 1
  SHARED: global
nodes:
  - id: a
    path: ./a
    env:
      STR: hello
      ZERO: 0
      INT: 640
      NEG: -3
      HEX: 0x10
      FLOAT: 1.5
      WHOLE: 1.0
      BOOL: true
      TITLE: True
      QUOTED: "007"
      EMPTY: ""
      SHARED: node
`,
			check: func(t *testing.T, d *Descriptor) {
				want := map[string]string{
					"STR": "hello", "ZERO": "0", "INT": "640", "NEG": "-3", "HEX": "16",
					"FLOAT": "1.5", "WHOLE": "1", "BOOL": "true", "TITLE": "true",
					"QUOTED": "007", "EMPTY": "", "SHARED": "node",
				}
				n := mustNode(t, d, "a")
				if !maps.Equal(n.Env, want) {
					t.Errorf("env = %v\nwant  %v", n.Env, want)
				}
				merged := d.EnvFor(n)
				if merged["GLOBAL"] != "1" || merged["SHARED"] != "node" || len(merged) != len(want)+1 {
					t.Errorf("EnvFor = %v", merged)
				}
			},
		},
		{
			name: "args string",
			src: `nodes:
  - id: a
    path: ./a
    args: --name "hello world" -x 'a b' plain\ space "" "say \"hi\"" --flag=1
`,
			check: func(t *testing.T, d *Descriptor) {
				want := []string{"--name", "hello world", "-x", "a b", "plain space", "", `say "hi"`, "--flag=1"}
				if got := mustNode(t, d, "a").Args; !slices.Equal(got, want) {
					t.Errorf("args = %q, want %q", got, want)
				}
			},
		},
		{
			name: "args list",
			src: `nodes:
  - id: a
    path: ./a
    args: [-v, 3, "a b", true]
  - id: b
    path: ./b
    args: ""
`,
			check: func(t *testing.T, d *Descriptor) {
				if got, want := mustNode(t, d, "a").Args, []string{"-v", "3", "a b", "true"}; !slices.Equal(got, want) {
					t.Errorf("args = %q, want %q", got, want)
				}
				if got := mustNode(t, d, "b").Args; len(got) != 0 {
					t.Errorf("empty args = %q", got)
				}
			},
		},
		{
			name: "deploy and unstable deploy",
			src: `_unstable_deploy:
  machine: default
communication:
  _unstable_local: tcp
version: 1
name: demo
debug: {}
nodes:
  - id: a
    path: bin/a
    _unstable_deploy:
      machine: A
  - id: b
    path: bin/b
    deploy:
      machine: B
      working_dir: /srv/b
      labels:
        gpu: true
        arch: arm64
`,
			check: func(t *testing.T, d *Descriptor) {
				if d.Deploy.Machine != "default" {
					t.Errorf("dataflow deploy.machine = %q", d.Deploy.Machine)
				}
				if got := mustNode(t, d, "a").Deploy.Machine; got != "A" {
					t.Errorf("a machine = %q", got)
				}
				b := mustNode(t, d, "b")
				want := Deploy{Machine: "B", WorkingDir: "/srv/b", Labels: map[string]string{"gpu": "true", "arch": "arm64"}}
				if b.Deploy.Machine != want.Machine || b.Deploy.WorkingDir != want.WorkingDir || !maps.Equal(b.Deploy.Labels, want.Labels) {
					t.Errorf("b deploy = %+v, want %+v", b.Deploy, want)
				}
				if got := b.ResolvedPath("/df"); got != "/srv/b/bin/b" {
					t.Errorf("ResolvedPath with working_dir = %q", got)
				}
			},
		},
		{
			name: "send_stdout_as is an output",
			src: `nodes:
  - id: a
    path: ./a
    send_stdout_as: logs
    outputs: [data]
  - id: b
    path: shell
    args: echo hi
    inputs:
      logs: a/logs
`,
			check: func(t *testing.T, d *Descriptor) {
				a := mustNode(t, d, "a")
				if a.SendStdoutAs != "logs" || !slices.Equal(a.Outputs, []string{"data", "logs"}) {
					t.Errorf("send_stdout_as %q, outputs %v", a.SendStdoutAs, a.Outputs)
				}
				if b := mustNode(t, d, "b"); !b.IsShell() || b.IsDynamic() {
					t.Errorf("b: IsShell %v IsDynamic %v", b.IsShell(), b.IsDynamic())
				}
			},
		},
		{
			name: "anchors, null sections, names and git branch",
			src: `nodes:
  - id: a
    name: Camera
    description: grabs frames
    path: ./a
    git: https://example.com/a.git
    branch: main
    inputs:
    outputs:
    env: &common
      LEVEL: debug
  - id: b
    path: ./b
    env: *common
`,
			check: func(t *testing.T, d *Descriptor) {
				a := mustNode(t, d, "a")
				if a.Name != "Camera" || a.Description != "grabs frames" || a.Branch != "main" ||
					a.Inputs != nil || a.Outputs != nil {
					t.Errorf("a = %+v", a)
				}
				if got := mustNode(t, d, "b").Env["LEVEL"]; got != "debug" {
					t.Errorf("aliased env LEVEL = %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.src))
		})
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "df.yml")
	src := "nodes:\n  - id: a\n    path: ./bin/a\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Path != path || d.Dir != dir {
		t.Errorf("Path, Dir = %q, %q; want %q, %q", d.Path, d.Dir, path, dir)
	}
	if got, want := d.Nodes[0].ResolvedPath(d.Dir), filepath.Join(dir, "bin", "a"); got != want {
		t.Errorf("ResolvedPath = %q, want %q", got, want)
	}
	if d, err := Parse([]byte(src), ""); err != nil || d.Path != "" || d.Dir != "" {
		t.Errorf("Parse from bytes: Path %q Dir %q err %v", d.Path, d.Dir, err)
	}
	if _, err := ParseFile(filepath.Join(dir, "missing.yml")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("ParseFile(missing) = %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestResolvedPath(t *testing.T) {
	tests := []struct {
		path, workingDir, dir, want string
	}{
		{"/usr/bin/node", "", "/df", "/usr/bin/node"},
		{"dynamic", "", "/df", "dynamic"},
		{"shell", "/wd", "/df", "shell"},
		{"python3", "", "/df", "python3"},
		{"./bin/node", "", "/df", "/df/bin/node"},
		{"../../target/debug/node", "", "/a/b/df", "/a/target/debug/node"},
		{"bin/node", "/wd", "/df", "/wd/bin/node"},
		{"bin/node", "sub", "/df", "/df/sub/bin/node"},
		{"./bin/node", "", "", "./bin/node"},
		{"s.sh", "sub", "/df", "s.sh"}, // bare: the daemon resolves it, against PathBase
	}
	for _, tt := range tests {
		n := &Node{Path: tt.path, Deploy: Deploy{WorkingDir: tt.workingDir}}
		if got := n.ResolvedPath(tt.dir); got != tt.want {
			t.Errorf("ResolvedPath(%q) with path %q, working_dir %q = %q, want %q",
				tt.dir, tt.path, tt.workingDir, got, tt.want)
		}
	}
}

func TestPathBase(t *testing.T) {
	for _, tt := range []struct{ workingDir, dir, want string }{
		{"", "/df", "/df"},
		{"/wd", "/df", "/wd"},
		{"sub", "/df", "/df/sub"},
		{"sub", "", "sub"},
	} {
		n := &Node{Path: "s.sh", Deploy: Deploy{WorkingDir: tt.workingDir}}
		if got := n.PathBase(tt.dir); got != tt.want {
			t.Errorf("PathBase(%q) with working_dir %q = %q, want %q", tt.dir, tt.workingDir, got, tt.want)
		}
	}
	for p, want := range map[string]bool{"s.sh": true, "./s.sh": false, "bin/s.sh": false, "/bin/sh": false, "": false} {
		if IsBareName(p) != want {
			t.Errorf("IsBareName(%q) = %v", p, !want)
		}
	}
}

func TestParseRefusesOversizedDescriptor(t *testing.T) {
	data := append([]byte("nodes:\n  - id: a\n    path: ./a\n"), bytes.Repeat([]byte("# padding\n"), MaxSize/10+1)...)
	_, err := Parse(data, "big.yml")
	if err == nil || !strings.Contains(err.Error(), "big.yml: descriptor is 4.0 MiB, over the 4 MiB limit") {
		t.Fatalf("oversized descriptor: %v", err)
	}
}
