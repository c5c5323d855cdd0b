package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTailStart(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 5000) // lines across the 4 KiB read chunks
	for _, c := range []struct {
		text string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"", 3, ""},
		{"only\n", 1, "only\n"},
		{long + "\n" + long + "\nend\n", 2, long + "\nend\n"},
	} {
		p := filepath.Join(t.TempDir(), "log")
		if err := os.WriteFile(p, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		off, err := tailStart(f, int64(len(c.text)), c.n)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.text[off:]; got != c.want {
			t.Errorf("tail %d of %.20q: %.20q, want %.20q", c.n, c.text, got, c.want)
		}
	}
}
