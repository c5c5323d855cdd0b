package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/proto"
	"github.com/spf13/cobra"
)

// Defaults follow dora 0.4: a grace period, then SIGTERM, then SIGKILL after half the grace.
const (
	defaultGrace     = 10 * time.Second
	killWindowFactor = 0.5
	stopTimeoutSlack = 10 * time.Second
	clientSlack      = 5 * time.Second // the CLI's own deadline is this far past the server's
)

type stopOpts struct {
	grace   time.Duration
	timeout time.Duration
	force   bool
	detach  bool
	output  string
}

func defaultStopTimeout(grace time.Duration) time.Duration {
	return grace + time.Duration(float64(grace)*killWindowFactor) + stopTimeoutSlack
}

func newStopCmd(g *globalOpts) *cobra.Command {
	o := &stopOpts{}
	cmd := &cobra.Command{
		Use:   "stop [DATAFLOW]",
		Short: "Stop a dataflow and print every node's outcome",
		Long: `Stop a dataflow, given by name, UUID or a unique UUID prefix of 4+ characters (e.g.
0b6e5c; optional when exactly one is running). A name wins over a prefix it looks like.

Every node is sent a Stop event; a node still running after --grace-duration gets SIGTERM,
then SIGKILL after half the grace again. --force kills at once. The command always returns
by --timeout (default grace + kill window + 10s): nodes on a daemon confirmed dead are
reported lost at once, and daemons that did not confirm in time are named. A stop of a
dataflow already stopping joins that stop and says so: its grace applies, and --force
escalates it to an immediate kill.

Outcomes: finished, stopped, killed after grace, killed (forced),
failed (exit N / signal S), lost (daemon D dead), dynamic, never connected.
Exit status 0 when every node has an outcome and none failed or was lost (a node killed
after the grace is an outcome, not an error); 1 with a one-line reason otherwise.`,
		Example: "  doractl stop demo\n  doractl stop demo --grace-duration 5s --timeout 30s\n  doractl stop 0b6e... --force -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutputFormat(o.output); err != nil {
				return err
			}
			c := g.client()
			ref := ""
			if len(args) == 1 {
				ref = args[0]
			} else {
				r, err := onlyRunning(cmd.Context(), c)
				if err != nil {
					return err
				}
				ref = r
			}
			return runStop(cmd.Context(), c, ref, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().DurationVar(&o.grace, "grace-duration", defaultGrace, "time nodes get to stop after the Stop event, before SIGTERM")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "overall deadline (default grace + kill window + 10s)")
	cmd.Flags().BoolVar(&o.force, "force", false, "skip the grace period: kill every node at once")
	cmd.Flags().BoolVar(&o.detach, "detach", false, "return once the stop is recorded; do not wait for outcomes")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	return cmd
}

// onlyRunning names the single running dataflow, or explains why there is none to pick.
func onlyRunning(ctx context.Context, c *client.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dfs, err := c.List(ctx)
	if err != nil {
		return "", err
	}
	var running []proto.Dataflow
	for _, d := range dfs {
		if d.Status == proto.DataflowRunning || d.Status == proto.DataflowStopping {
			running = append(running, d)
		}
	}
	switch len(running) {
	case 0:
		return "", fmt.Errorf("no running dataflow to stop")
	case 1:
		return running[0].ID, nil
	default:
		return "", fmt.Errorf("%d dataflows are running: name one (see doractl list)", len(running))
	}
}

func runStop(ctx context.Context, c *client.Client, ref string, o *stopOpts, out, errw io.Writer) error {
	timeout := o.timeout
	if timeout <= 0 {
		timeout = defaultStopTimeout(o.grace)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+clientSlack)
	defer cancel()
	req := proto.APIStopRequest{Grace: o.grace.String(), Timeout: timeout.String(), Force: o.force, Detach: o.detach}
	if o.output == "table" && !o.detach && isTerminal(os.Stderr) {
		fmt.Fprintf(errw, "Stopping %s (grace %s, timeout %s)...\n", ref, o.grace, timeout)
		stopProgress := showStopProgress(ctx, c, ref, errw)
		defer stopProgress()
	}
	rep, err := c.Stop(ctx, ref, req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("coordinator did not answer the stop of %s within %s: %w\nif it received the stop, it applies it once it answers again: check with doractl list", ref, timeout+clientSlack, err)
		}
		return err
	}
	if o.output == "json" {
		if err := printJSON(out, rep); err != nil {
			return err
		}
	} else {
		if rep.Joined != "" {
			fmt.Fprintf(errw, "note: %s\n", rep.Joined)
		}
		if o.detach {
			fmt.Fprintf(out, "stop of %s (%s) recorded; follow it with: doractl list\n", rep.Name, rep.ID)
			return nil
		}
		printNodeOutcomes(out, rep.Nodes, rep.Unconfirmed)
		switch {
		case rep.AlreadyEnded && rep.Elapsed != "":
			fmt.Fprintf(out, "dataflow %s (%s) had already %s (its stop took %s)\n", rep.Name, rep.ID, rep.Status, rep.Elapsed)
		case rep.AlreadyEnded:
			fmt.Fprintf(out, "dataflow %s (%s) had already %s\n", rep.Name, rep.ID, rep.Status)
		case rep.Status == proto.DataflowFinished || rep.Status == proto.DataflowFailed:
			fmt.Fprintf(out, "dataflow %s (%s) %s; the stop took %s\n", rep.Name, rep.ID, rep.Status, rep.Elapsed)
		default:
			fmt.Fprintf(out, "dataflow %s (%s) still %s after %s\n", rep.Name, rep.ID, rep.Status, rep.Elapsed)
		}
	}
	if rep.Error != "" {
		return &exitError{code: 1, msg: rep.Error}
	}
	return nil
}

// showStopProgress prints node outcomes as they arrive, while the stop request waits.
func showStopProgress(ctx context.Context, c *client.Client, ref string, w io.Writer) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[string]string{}
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			d, err := c.Get(rctx, ref)
			rcancel()
			if err != nil {
				continue
			}
			for _, n := range d.Nodes {
				if proto.IsFinal(n.Status) && seen[n.ID] != n.Status {
					seen[n.ID] = n.Status
					out := n.Outcome
					if out == "" {
						out = n.Status
					}
					fmt.Fprintf(w, "  %s: %s\n", n.ID, out)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
