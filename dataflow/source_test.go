package dataflow

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSource(t *testing.T) {
	tests := []struct {
		in      string
		want    Source
		str     string
		wantErr string
	}{
		{in: "cam/image", want: Source{Kind: SourceNode, Node: "cam", Output: "image"}, str: "cam/image"},
		{in: "dora/timer/millis/10", want: Source{Kind: SourceTimer, Interval: 10 * time.Millisecond}, str: "dora/timer/millis/10"},
		{in: "dora/timer/secs/3", want: Source{Kind: SourceTimer, Interval: 3 * time.Second}, str: "dora/timer/millis/3000"},
		{in: "dora/timer/millis/0", wantErr: "positive integer"},
		{in: "dora/timer/millis/+5", wantErr: "positive integer"},
		{in: "dora/timer/millis/1.5", wantErr: "positive integer"},
		{in: "dora/timer/millis/", wantErr: "positive integer"},
		{in: "dora/timer/hours/1", wantErr: "unit must be millis or secs"},
		{in: "dora/timer/secs/9223372037", wantErr: "too large"},
		{in: "dora/timer/millis/1/2", wantErr: "unknown dora source"},
		{in: "dora/other", wantErr: "unknown dora source"},
		{in: "node", wantErr: "must have the form node/output"},
		{in: "/out", wantErr: "must have the form node/output"},
		{in: "", wantErr: "empty source"},
		{in: "rt/op/out", wantErr: `output "out" of operator "op" in node "rt"; operators are not supported`},
	}
	for _, tt := range tests {
		got, err := ParseSource(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSource(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseSource(%q) = %+v (%q), %v; want %+v (%q)", tt.in, got, got, err, tt.want, tt.str)
		}
	}
	if got := (Source{}).String(); got != "invalid source" {
		t.Errorf("zero Source.String() = %q", got)
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: "  \t\n ", want: nil},
		{in: "-v --some-flag foo", want: []string{"-v", "--some-flag", "foo"}},
		{in: `a "b c" d`, want: []string{"a", "b c", "d"}},
		{in: `'it''s' "x"y`, want: []string{"its", "xy"}},
		{in: `'a "b" \c'`, want: []string{`a "b" \c`}},
		{in: `"a \"b\" \\ \c \$"`, want: []string{`a "b" \ \c $`}},
		{in: `a\ b c\\d`, want: []string{"a b", `c\d`}},
		{in: "a\\\nb", want: []string{"ab"}},
		{in: `"" ''`, want: []string{"", ""}},
		{in: "--x=$HOME *.go", want: []string{"--x=$HOME", "*.go"}},
		{in: `"open`, wantErr: "unterminated double quote"},
		{in: `'open`, wantErr: "unterminated single quote"},
		{in: `end\`, wantErr: "trailing backslash"},
	}
	for _, tt := range tests {
		got, err := SplitArgs(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("SplitArgs(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
