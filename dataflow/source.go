package dataflow

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParseSource parses an input source: `node/output`,
// `dora/timer/millis/N` or `dora/timer/secs/N` with N a positive integer.
func ParseSource(s string) (Source, error) {
	if s == "" {
		return Source{}, errors.New("empty source; expected node/output or dora/timer/millis/N")
	}
	if rest, ok := strings.CutPrefix(s, "dora/"); ok {
		return parseTimer(s, rest)
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || slices.Contains(parts, "") {
		return Source{}, fmt.Errorf("source %q must have the form node/output", s)
	}
	if len(parts) > 2 {
		return Source{}, fmt.Errorf(
			"source %q refers to output %q of operator %q in node %q; operators are not supported",
			s, strings.Join(parts[2:], "/"), parts[1], parts[0])
	}
	return Source{Kind: SourceNode, Node: parts[0], Output: parts[1]}, nil
}

// parseTimer parses the part after `dora/` of a built-in source.
func parseTimer(s, rest string) (Source, error) {
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] != "timer" {
		return Source{}, fmt.Errorf("unknown dora source %q; expected dora/timer/millis/N or dora/timer/secs/N", s)
	}
	var unit time.Duration
	switch parts[1] {
	case "millis":
		unit = time.Millisecond
	case "secs":
		unit = time.Second
	default:
		return Source{}, fmt.Errorf("timer %q: unit must be millis or secs, got %q", s, parts[1])
	}
	n, err := strconv.ParseUint(parts[2], 10, 63)
	if err != nil || n == 0 {
		return Source{}, fmt.Errorf("timer %q: interval must be a positive integer, got %q", s, parts[2])
	}
	if n > uint64(math.MaxInt64/int64(unit)) {
		return Source{}, fmt.Errorf("timer %q: interval is too large", s)
	}
	return Source{Kind: SourceTimer, Interval: time.Duration(n) * unit}, nil
}

// String returns the source as written in a descriptor: `node/output` or
// `dora/timer/millis/N`.
func (s Source) String() string {
	switch s.Kind {
	case SourceNode:
		return s.Node + "/" + s.Output
	case SourceTimer:
		return "dora/timer/millis/" + strconv.FormatInt(s.Interval.Milliseconds(), 10)
	}
	return "invalid source"
}

// String names the kind.
func (k SourceKind) String() string {
	switch k {
	case SourceNode:
		return "node"
	case SourceTimer:
		return "timer"
	}
	return "SourceKind(" + strconv.Itoa(int(k)) + ")"
}
