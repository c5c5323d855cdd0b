package dataflow

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a problem found in a descriptor. Parse returns one or more of
// them joined with errors.Join; use Errors to get them back.
type Error struct {
	File   string
	Line   int
	Column int
	// Node is the id of the node the problem is in ("" for problems
	// outside any node or before its id is known).
	Node string
	Msg  string
	// Err is the underlying cause, if any.
	Err error
}

// Error formats the problem as `FILE:LINE:COL: node "ID": MSG`, leaving
// out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Node != "" {
		fmt.Fprintf(&b, "node %q: ", e.Node)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errors returns every *Error contained in err, in order.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// problems collects the errors found while reading one file.
type problems struct {
	file string
	list []*Error
}

// add records a problem at the position of n (which may be nil).
func (p *problems) add(n *yaml.Node, nodeID, format string, args ...any) {
	e := &Error{File: p.file, Node: nodeID, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.list = append(p.list, e)
}

// addAt records a problem at an explicit position.
func (p *problems) addAt(line, col int, nodeID, format string, args ...any) {
	p.list = append(p.list, &Error{
		File: p.file, Line: line, Column: col, Node: nodeID,
		Msg: fmt.Sprintf(format, args...),
	})
}

// err returns the problems sorted by position and joined, or nil.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool {
		a, b := p.list[i], p.list[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	errs := make([]error, len(p.list))
	for i, e := range p.list {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// syntaxError turns an error from the YAML decoder into an *Error,
// keeping the line the decoder reports. The decoder often names the line
// where the enclosing block starts rather than the offending one, so when
// data is given the line is refined to the first line at which a prefix of
// data fails with the same message.
func syntaxError(file string, err error, data []byte) *Error {
	msg, _ := strings.CutPrefix(err.Error(), "yaml: ")
	e := &Error{File: file, Msg: "invalid YAML: " + msg, Err: err}
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return e
	}
	num, text, ok := strings.Cut(rest, ": ")
	if !ok {
		return e
	}
	line, convErr := strconv.Atoi(num)
	if convErr != nil || line <= 0 {
		return e
	}
	e.Line = line
	e.Msg = "invalid YAML: " + text
	if l := firstFailingLine(data, text); l > line {
		e.Line = l
	}
	return e
}

// maxRefineLines bounds the work firstFailingLine does (it is quadratic).
const maxRefineLines = 1000

// firstFailingLine returns the smallest n such that decoding the first n
// lines of data fails with msg (the decoder's text without "yaml: line N: "),
// or 0 if there is none.
func firstFailingLine(data []byte, msg string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxRefineLines {
		return 0
	}
	var prefix []byte
	for i, l := range lines {
		prefix = append(prefix, l...)
		dec := yaml.NewDecoder(bytes.NewReader(prefix))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err == nil {
				continue
			}
			if !errors.Is(err, io.EOF) && strings.HasSuffix(err.Error(), ": "+msg) {
				return i + 1
			}
			break
		}
	}
	return 0
}
