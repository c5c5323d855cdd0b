package testbed

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

func lookPath(tool string) (string, error) { return exec.LookPath(tool) }

// run runs one command, bounded by the bed's timeout and ctx, with stdin as
// its input when not empty. The error names the command, its input and its
// output.
func (b *Bed) run(ctx context.Context, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	b.log.Debug("run", "cmd", cmd.String(), "stdin", stdin, "err", err)
	if err != nil {
		var more string
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			more += " (" + ctx.Err().Error() + ")"
		}
		if stdin != "" {
			more += "\ninput:\n" + strings.TrimRight(stdin, "\n")
		}
		if o := strings.TrimSpace(string(out)); o != "" {
			more += "\noutput: " + o
		}
		return string(out), fmt.Errorf("testbed: `%s` failed: %w%s", strings.Join(cmd.Args, " "), err, more)
	}
	return string(out), nil
}
