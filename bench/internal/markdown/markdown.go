// Package markdown holds what the benchmark drivers under bench/cmd share to write their
// figures: Markdown tables, splicing a generated section into a file between
// `<!-- BEGIN name -->` and `<!-- END name -->` markers (the rest of the file kept byte
// for byte), and the run header (load average) and progress lines.
package markdown

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Begin and End are the default markers of the section called name.
func Begin(name string) string { return "<!-- BEGIN " + name + " -->" }

// End is the closing marker of the section called name.
func End(name string) string { return "<!-- END " + name + " -->" }

// Splice returns doc with the text between the begin and end markers (the markers
// included) replaced by begin, body and end, each marker on its own line. Everything
// outside the markers is kept byte for byte. Without the markers the section is
// appended, after a blank line; an empty doc becomes preamble followed by the section.
func Splice(doc, begin, end, body, preamble string) string {
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	section := begin + "\n" + body + end
	i := strings.Index(doc, begin)
	if i >= 0 {
		if j := strings.Index(doc[i:], end); j >= 0 {
			return doc[:i] + section + doc[i+j+len(end):]
		}
	}
	switch {
	case doc == "":
		return preamble + section + "\n"
	case strings.HasSuffix(doc, "\n\n"):
	case strings.HasSuffix(doc, "\n"):
		doc += "\n"
	default:
		doc += "\n\n"
	}
	return doc + section + "\n"
}

// WriteSection splices body into the file at path between the markers of the section
// called name (see Splice); a missing file is created with preamble before the section.
// Path "-" writes body to stdout.
func WriteSection(path, name, body, preamble string) error {
	return WriteSectionMarked(path, Begin(name), End(name), body, preamble)
}

// WriteSectionMarked is WriteSection with explicit markers.
func WriteSectionMarked(path, begin, end, body, preamble string) error {
	if path == "-" {
		_, err := io.WriteString(os.Stdout, body)
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc := Splice(string(old), begin, end, body, preamble)
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Table writes a Markdown table's header row and its separator.
func Table(b *bytes.Buffer, columns ...string) {
	b.WriteString("| " + strings.Join(columns, " | ") + " |\n|")
	for range columns {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
}

// LoadAverage is the 1, 5 and 15 minute load average, or "unknown".
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Progress logs a timestamped line to stderr.
func Progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
