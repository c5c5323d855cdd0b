package dataflow

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"nodes:\n  - id: a\n    path: ./a\n    outputs: [o]\n  - id: b\n    path: ./b\n    inputs:\n      x: a/o\n      t: dora/timer/millis/5\n",
		"nodes:\n  - id: a\n    path: ./a\n    inputs:\n      x: {source: dora/timer/secs/1, queue_size: 2, input_timeout: 0.5}\n",
		"nodes:\n  - &n {id: a, path: ./a}\n  - *n\n",
		"nodes: &x [*x]\n",
		"nodes:\n  - id: a\n    path: ./a\n    args: \"a 'b c' \\\"d\\\"\"\n    env: {A: 1, B: true, C: 1.5}\n",
		"nodes:\n  - id: r\n    operators: []\n  - id: s\n    path: ./s\n    inputs: {m: r/op/out}\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if dir := findCorpus(); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, "fuzz.yml")
		if err != nil {
			if d != nil {
				t.Fatal("descriptor returned along with an error")
			}
			if len(Errors(err)) == 0 {
				t.Fatalf("error carries no *Error: %v", err)
			}
			return
		}
		seen := make(map[string]bool)
		for _, n := range d.Nodes {
			if n.ID == "" || seen[n.ID] {
				t.Fatalf("accepted empty or duplicate node id %q", n.ID)
			}
			seen[n.ID] = true
		}
		for _, n := range d.Nodes {
			for _, in := range n.Inputs {
				switch in.Source.Kind {
				case SourceNode:
					from := d.Node(in.Source.Node)
					if from == nil || !from.HasOutput(in.Source.Output) {
						t.Fatalf("accepted dangling source %v", in.Source)
					}
				case SourceTimer:
					if in.Source.Interval <= 0 {
						t.Fatalf("accepted timer interval %v", in.Source.Interval)
					}
				default:
					t.Fatalf("accepted source kind %v", in.Source.Kind)
				}
			}
		}
	})
}
