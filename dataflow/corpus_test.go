package dataflow

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestCorpusAccepted(t *testing.T) {
	dir := corpusDir(t)
	const ms = time.Millisecond
	tests := []struct {
		file   string
		ids    []string
		inputs map[string]string // node id -> inputSummary
		timers []time.Duration
		check  func(t *testing.T, d *Descriptor)
	}{
		{
			file: "rust-dataflow.yml",
			ids:  []string{"rust-node", "rust-status-node", "rust-sink"},
			inputs: map[string]string{
				"rust-node":        "tick=dora/timer/millis/10",
				"rust-status-node": "random=rust-node/random tick=dora/timer/millis/100",
				"rust-sink":        "message=rust-status-node/status",
			},
			timers: []time.Duration{10 * ms, 100 * ms},
			check: func(t *testing.T, d *Descriptor) {
				n := mustNode(t, d, "rust-status-node")
				if n.Line != 10 || n.Column != 5 {
					t.Errorf("rust-status-node at %d:%d, want 10:5", n.Line, n.Column)
				}
				if got := n.Inputs[1]; got.Line != 14 || got.Column != 7 || got.QueueSize != DefaultQueueSize {
					t.Errorf("tick input = %+v, want line 14 col 7 queue %d", got, DefaultQueueSize)
				}
				if got, want := n.Build, "cargo build -p rust-dataflow-example-status-node"; got != want {
					t.Errorf("build = %q, want %q", got, want)
				}
				if !slices.Equal(n.Outputs, []string{"status"}) {
					t.Errorf("outputs = %v, want [status]", n.Outputs)
				}
				want := []Subscriber{{Node: "rust-status-node", Input: "random", QueueSize: DefaultQueueSize}}
				if got := d.Consumers("rust-node", "random"); !slices.Equal(got, want) {
					t.Errorf("Consumers(rust-node, random) = %v, want %v", got, want)
				}
				exe := mustNode(t, d, "rust-node").ResolvedPath(d.Dir)
				if want := filepath.Join(dir, "../../target/debug/rust-dataflow-example-node"); exe != want {
					t.Errorf("ResolvedPath = %q, want %q", exe, want)
				}
			},
		},
		{
			file: "rust-dataflow.dataflow_dynamic.yml",
			ids:  []string{"rust-node", "rust-status-node", "rust-sink-dynamic"},
			inputs: map[string]string{
				"rust-sink-dynamic": "message=rust-status-node/status",
			},
			timers: []time.Duration{100 * ms},
			check: func(t *testing.T, d *Descriptor) {
				n := mustNode(t, d, "rust-sink-dynamic")
				if !n.IsDynamic() || n.Path != "dynamic" || n.ResolvedPath(d.Dir) != "dynamic" {
					t.Errorf("rust-sink-dynamic: path %q, IsDynamic %v", n.Path, n.IsDynamic())
				}
				if mustNode(t, d, "rust-node").IsDynamic() {
					t.Error("rust-node reported as dynamic")
				}
			},
		},
		{
			file: "python-dataflow.yml",
			ids:  []string{"camera", "object-detection", "plot"},
			inputs: map[string]string{
				"camera":           "tick=dora/timer/millis/20",
				"object-detection": "image=camera/image",
				"plot":             "boxes2d=object-detection/bbox image=camera/image",
			},
			timers: []time.Duration{20 * ms},
			check: func(t *testing.T, d *Descriptor) {
				n := mustNode(t, d, "camera")
				want := map[string]string{"CAPTURE_PATH": "0", "IMAGE_WIDTH": "640", "IMAGE_HEIGHT": "480"}
				if !maps.Equal(n.Env, want) {
					t.Errorf("env = %v, want %v", n.Env, want)
				}
				if exe := n.ResolvedPath(d.Dir); exe != "opencv-video-capture" {
					t.Errorf("bare name resolved to %q, want it unchanged", exe)
				}
				if !strings.HasPrefix(n.Build, `pip install "git+https://github.com/dora-rs/node-hub.git#egg=opencv-video-capture`) {
					t.Errorf("build = %q", n.Build)
				}
				subs := d.Consumers("camera", "image")
				if len(subs) != 2 || subs[0].Node != "object-detection" || subs[1].Node != "plot" {
					t.Errorf("Consumers(camera, image) = %v", subs)
				}
			},
		},
		{
			file: "rust-dataflow-git.yml",
			ids:  []string{"rust-node", "rust-status-node", "rust-sink"},
			inputs: map[string]string{
				"rust-status-node": "random=rust-node/random tick=dora/timer/millis/100",
			},
			timers: []time.Duration{10 * ms, 100 * ms},
			check: func(t *testing.T, d *Descriptor) {
				for _, n := range d.Nodes {
					if n.Git != "https://github.com/dora-rs/dora.git" || n.Rev != "678bc262b0b0d6b30b1f577d6f803f2fc827a4e6" {
						t.Errorf("%s: git %q rev %q", n.ID, n.Git, n.Rev)
					}
					if n.Branch != "" || n.Tag != "" {
						t.Errorf("%s: branch %q tag %q, want none", n.ID, n.Branch, n.Tag)
					}
				}
			},
		},
		{
			file: "rust-dataflow.v1.0-rc.yml",
			ids:  []string{"rust-node", "rust-status-node", "rust-sink"},
			inputs: map[string]string{
				"rust-status-node": "random=rust-node/random tick=dora/timer/millis/100",
			},
			timers: []time.Duration{10 * ms, 100 * ms},
			check: func(t *testing.T, d *Descriptor) {
				n := mustNode(t, d, "rust-status-node")
				if want := map[string]string{"random": "std/core/v1/UInt64"}; !maps.Equal(n.InputTypes, want) {
					t.Errorf("input_types = %v, want %v", n.InputTypes, want)
				}
				if want := map[string]string{"status": "std/core/v1/String"}; !maps.Equal(n.OutputTypes, want) {
					t.Errorf("output_types = %v, want %v", n.OutputTypes, want)
				}
			},
		},
		{
			file: "rust-dataflow.dataflow-restart.v1.0-rc.yml",
			ids:  []string{"rust-node", "rust-status-node", "rust-sink"},
			inputs: map[string]string{
				"rust-status-node": "fail=dora/timer/millis/400 random=rust-node/random tick=dora/timer/millis/100 trigger-exit=dora/timer/millis/300",
				"rust-sink":        "exit=rust-status-node/triggered-exit message=rust-status-node/status",
			},
			timers: []time.Duration{100 * ms, 300 * ms, 400 * ms},
			check: func(t *testing.T, d *Descriptor) {
				s := mustNode(t, d, "rust-status-node")
				if s.RestartPolicy != RestartOnFailure || s.MaxRestarts != 5 || s.RestartDelay != time.Second ||
					s.MaxRestartDelay != 10*time.Second || s.HealthCheckTimeout != 30*time.Second || s.RestartWindow != 0 {
					t.Errorf("rust-status-node restart settings: %q %d %v %v %v %v", s.RestartPolicy, s.MaxRestarts,
						s.RestartDelay, s.MaxRestartDelay, s.HealthCheckTimeout, s.RestartWindow)
				}
				k := mustNode(t, d, "rust-sink")
				if k.RestartPolicy != RestartAlways || k.MaxRestarts != 10 || k.RestartDelay != 500*ms ||
					k.RestartWindow != time.Minute {
					t.Errorf("rust-sink restart settings: %q %d %v %v", k.RestartPolicy, k.MaxRestarts, k.RestartDelay, k.RestartWindow)
				}
				exit := k.Inputs[0]
				if exit.ID != "exit" || exit.Timeout != 10*time.Second || exit.QueueSize != DefaultQueueSize ||
					exit.Line != 35 {
					t.Errorf("exit input = %+v, want timeout 10s, default queue, line 35", exit)
				}
				if k.Inputs[1].Timeout != 0 {
					t.Errorf("short-form input has timeout %v", k.Inputs[1].Timeout)
				}
				if mustNode(t, d, "rust-node").RestartPolicy != "" {
					t.Error("rust-node has a restart policy, want none")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			d, err := ParseFile(path)
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if d.Path != path || d.Dir != dir {
				t.Errorf("Path, Dir = %q, %q; want %q, %q", d.Path, d.Dir, path, dir)
			}
			if got := nodeIDs(d); !slices.Equal(got, tt.ids) {
				t.Errorf("node ids = %v, want %v", got, tt.ids)
			}
			for id, want := range tt.inputs {
				if got := inputSummary(mustNode(t, d, id)); got != want {
					t.Errorf("%s inputs = %q, want %q", id, got, want)
				}
			}
			if got := d.Timers(); !slices.Equal(got, tt.timers) {
				t.Errorf("Timers = %v, want %v", got, tt.timers)
			}
			tt.check(t, d)
		})
	}
}

func TestCorpusRejected(t *testing.T) {
	dir := corpusDir(t)
	tests := []struct {
		file     string
		line     int    // line of `- id: runtime-node`
		consumer string // node reading an operator output
	}{
		{"c-dataflow.yml", 9, "c_sink"},
		{"multiple-daemons.yml", 12, "rust-sink"},
		{"multiple-daemons.v1.0-rc.yml", 12, "rust-sink"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(dir, tt.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if lines := strings.Split(string(data), "\n"); !strings.Contains(lines[tt.line-1], "id: runtime-node") {
				t.Fatalf("corpus changed: line %d is %q", tt.line, lines[tt.line-1])
			}
			d, err := ParseFile(path)
			if err == nil {
				t.Fatalf("ParseFile accepted %s: %v", tt.file, nodeIDs(d))
			}
			wantText := path + ":" + strconv.Itoa(tt.line) + ":5: node \"runtime-node\": operators are not supported"
			if !strings.Contains(err.Error(), wantText) {
				t.Errorf("error does not contain %q:\n%v", wantText, err)
			}
			var operator, consumer bool
			for _, e := range Errors(err) {
				if e.File != path {
					t.Errorf("error names file %q, want %q", e.File, path)
				}
				switch {
				case e.Node == "runtime-node" && e.Line == tt.line && strings.Contains(e.Msg, "operators are not supported"):
					operator = true
				case e.Node == tt.consumer && strings.Contains(e.Msg, "runtime-node") && strings.Contains(e.Msg, "operator"):
					consumer = true
				default:
					t.Errorf("unexpected error: %v", e)
				}
			}
			if !operator || !consumer {
				t.Errorf("missing operator-node error (%v) or consumer error (%v):\n%v", operator, consumer, err)
			}
		})
	}
}

// TestCorpusDeploy reads the multiple-daemons examples without their
// operator node, to check the per-node deploy sections.
func TestCorpusDeploy(t *testing.T) {
	dir := corpusDir(t)
	tests := []struct {
		file      string
		consumers []Subscriber // of rust-node/random once runtime-node is gone
	}{
		{"multiple-daemons.yml", nil},
		{"multiple-daemons.v1.0-rc.yml", []Subscriber{{Node: "rust-sink", Input: "random", QueueSize: DefaultQueueSize}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			d := mustParse(t, withoutNode(t, data, "runtime-node"))
			if got, want := nodeIDs(d), []string{"rust-node", "rust-sink"}; !slices.Equal(got, want) {
				t.Fatalf("node ids = %v, want %v", got, want)
			}
			for id, machine := range map[string]string{"rust-node": "A", "rust-sink": "B"} {
				if got := mustNode(t, d, id).Deploy.Machine; got != machine {
					t.Errorf("%s: deploy.machine = %q, want %q", id, got, machine)
				}
			}
			if got := d.Consumers("rust-node", "random"); !slices.Equal(got, tt.consumers) {
				t.Errorf("Consumers(rust-node, random) = %v, want %v", got, tt.consumers)
			}
		})
	}
}

// withoutNode removes the node id, and every input reading from it, from
// the descriptor in data.
func withoutNode(t *testing.T, data []byte, id string) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	nodes := root.Content[1]
	if root.Content[0].Value != "nodes" {
		t.Fatalf("first key is %q, want nodes", root.Content[0].Value)
	}
	nodes.Content = slices.DeleteFunc(nodes.Content, func(n *yaml.Node) bool {
		return mapValue(n, "id") != nil && mapValue(n, "id").Value == id
	})
	for _, n := range nodes.Content {
		inputs := mapValue(n, "inputs")
		if inputs == nil {
			continue
		}
		var kept []*yaml.Node
		for i := 0; i < len(inputs.Content); i += 2 {
			if !strings.HasPrefix(inputs.Content[i+1].Value, id+"/") {
				kept = append(kept, inputs.Content[i], inputs.Content[i+1])
			}
		}
		inputs.Content = kept
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
