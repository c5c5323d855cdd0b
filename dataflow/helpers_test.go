package dataflow

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusDir finds shared/testdata/dora-descriptors by walking up from the
// working directory; it skips the test if there is none.
func corpusDir(t testing.TB) string {
	t.Helper()
	if dir := findCorpus(); dir != "" {
		return dir
	}
	t.Skip("dora descriptor corpus shared/testdata/dora-descriptors not found above the working directory")
	return ""
}

// findCorpus walks up from the working directory looking for
// shared/testdata/dora-descriptors; it returns "" if there is none.
func findCorpus() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		c := filepath.Join(dir, "shared", "testdata", "dora-descriptors")
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}

// mustParse parses src and fails the test on error.
func mustParse(t *testing.T, src string) *Descriptor {
	t.Helper()
	d, err := Parse([]byte(src), "test.yml")
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return d
}

// mustNode returns the node id of d or fails the test.
func mustNode(t *testing.T, d *Descriptor, id string) *Node {
	t.Helper()
	n := d.Node(id)
	if n == nil {
		t.Fatalf("no node %q; nodes are %v", id, nodeIDs(d))
	}
	return n
}

func nodeIDs(d *Descriptor) []string {
	ids := make([]string, len(d.Nodes))
	for i, n := range d.Nodes {
		ids[i] = n.ID
	}
	return ids
}

// inputSummary renders inputs as "id=source" words for easy comparison.
func inputSummary(n *Node) string {
	parts := make([]string, len(n.Inputs))
	for i, in := range n.Inputs {
		parts[i] = in.ID + "=" + in.Source.String()
	}
	return strings.Join(parts, " ")
}
