package markdown

import (
	"bytes"
	"testing"
)

func TestSplice(t *testing.T) {
	b, e := Begin("x"), End("x")
	cases := []struct{ name, doc, want string }{
		{"empty", "", "# T\n\n" + b + "\nnew\n" + e + "\n"},
		{"replace", "head\n" + b + "\nold\nold\n" + e + "\ntail\n", "head\n" + b + "\nnew\n" + e + "\ntail\n"},
		{"append", "head\n", "head\n\n" + b + "\nnew\n" + e + "\n"},
		{"append no newline", "head", "head\n\n" + b + "\nnew\n" + e + "\n"},
		{"other section kept", Begin("y") + "\ny\n" + End("y") + "\n", Begin("y") + "\ny\n" + End("y") + "\n\n" + b + "\nnew\n" + e + "\n"},
	}
	for _, c := range cases {
		if got := Splice(c.doc, b, e, "new", "# T\n\n"); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	Table(&b, "a", "b c")
	if want := "| a | b c |\n| --- | --- |\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
