package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/doractl/doractl/local"
	"github.com/doractl/doractl/proto"
)

type runOpts struct {
	name      string
	stopAfter time.Duration
	grace     time.Duration
	nodeAddr  string
	stateDir  string
	quiet     bool
	lo        logOpts
}

func newRunCmd() *cobra.Command {
	o := &runOpts{}
	cmd := &cobra.Command{
		Use:   "run DATAFLOW.yml",
		Short: "Run a dataflow in this process: no cluster needed, dynamic nodes included",
		Long: `Run a dataflow with an in-process coordinator and daemon: the cluster's code, without a
cluster. Nothing listens on the network except the dynamic-node listener (--node-addr,
loopback), so dynamic nodes connect exactly as they do to a cluster daemon; the run waits
for them. Every node runs on this machine: deploy sections (machine, labels) are not
followed, and a note says which were not.

Node output streams to stdout, each line prefixed with the node id (coloured on a
terminal); --quiet hides it. The node log files are kept in --state-dir/run/.

The first Ctrl-C (or SIGTERM, SIGHUP, or --stop-after) stops the dataflow gracefully
within --grace-duration; a second Ctrl-C kills every node. If the process itself is
killed, the kernel kills the nodes it spawned. Exit status 0 when every node finished or
was stopped cleanly, 1 with the failing node otherwise.`,
		Example: "  doractl run examples/rust-dataflow/dataflow.yml --stop-after 5s\n  doractl run dataflow_dynamic.yml --node-addr 127.0.0.1:7291 --quiet",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLocal(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "", "name of the dataflow (default generated)")
	f.DurationVar(&o.stopAfter, "stop-after", 0, "stop the dataflow gracefully after this long and print a summary (0 = run until it ends)")
	f.DurationVar(&o.grace, "grace-duration", defaultGrace, "time nodes get to stop after the Stop event, before SIGTERM")
	f.StringVar(&o.nodeAddr, "node-addr", fmt.Sprintf("127.0.0.1:%d", proto.DefaultNodePort), "listener for dynamic nodes")
	f.StringVar(&o.stateDir, "state-dir", "", "folder for the node logs, kept in STATE_DIR/run/dataflows/ID/ (default $DORACTL_STATE_DIR, else ~/.local/state/doractl)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not stream node output")
	f.StringVar(&o.lo.level, "log-level", "error", "log level of the in-process coordinator and daemon: trace, debug, info, warn, error")
	f.BoolVar(&o.lo.json, "log-json", false, "write logs as JSON lines")
	return cmd
}

func runLocal(cmd *cobra.Command, path string, o *runOpts) error {
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	log, err := o.lo.logger("doractl-run")
	if err != nil {
		return err
	}
	if o.grace < 0 || o.stopAfter < 0 {
		return fmt.Errorf("--grace-duration and --stop-after must not be negative")
	}
	// A closed stdout (doractl run | head) makes writes fail instead of killing the
	// process, which would kill the nodes with it.
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)

	graceful, force, stopSignals := twoStageSignals(cmd.Context())
	defer stopSignals()

	if o.stateDir == "" {
		o.stateDir = stateDir()
	}
	cfg := local.Config{
		Path:      path,
		Name:      o.name,
		NodeAddr:  o.nodeAddr,
		StateDir:  o.stateDir,
		Grace:     o.grace,
		StopAfter: o.stopAfter,
		Force:     force,
		Logger:    log,
		Version:   version,
		Events:    func(ev local.Event) { printRunEvent(errw, ev, o.grace) },
	}
	if !o.quiet {
		cfg.Logs = nodeLogWriters(out, isTerminalWriter(out))
	}
	df, err := local.Run(graceful, cfg)
	if err != nil {
		return err
	}
	if o.stopAfter > 0 || df.Status == proto.DataflowFailed || graceful.Err() != nil {
		fmt.Fprintln(errw)
		printNodeSummary(errw, df.Nodes)
	}
	if df.Status != proto.DataflowFailed {
		return nil
	}
	return &exitError{code: 1, msg: runFailure(df)}
}

// printRunEvent reports the run's progress on stderr.
func printRunEvent(w io.Writer, ev local.Event, grace time.Duration) {
	switch ev.Kind {
	case local.EventStarted:
		fmt.Fprintf(w, "dataflow %s (%s) running; Ctrl-C to stop it\n", ev.Dataflow.Name, ev.Dataflow.ID)
		if len(ev.Dynamic) > 0 {
			fmt.Fprintf(w, "dynamic nodes connect to %s (%s); node logs in %s\n", ev.NodeAddr, strings.Join(ev.Dynamic, ", "), ev.LogDir)
		} else {
			fmt.Fprintf(w, "node logs in %s\n", ev.LogDir)
		}
		if len(ev.Ignored) > 0 {
			fmt.Fprintf(w, "note: every node runs on this machine; deploy sections not followed: %s\n", strings.Join(ev.Ignored, "; "))
		}
	case local.EventStopping:
		if ev.Force {
			fmt.Fprintln(w, "forcing stop (killing every node)...")
		} else {
			fmt.Fprintf(w, "stopping (grace %s); Ctrl-C again to force\n", grace)
		}
	case local.EventNodeFailed:
		fmt.Fprintf(w, "node %q %s\n", ev.Node.ID, outcomeOf(ev.Node))
	}
}

// runFailure is the one-line reason of a failed run: the first failed node and its exit.
func runFailure(df proto.Dataflow) string {
	for _, n := range df.Nodes {
		if n.Status == proto.NodeFailed {
			return fmt.Sprintf("node %q %s", n.ID, outcomeOf(n))
		}
	}
	return fmt.Sprintf("dataflow %s failed: %s", df.Name, orDash(df.Reason))
}

func outcomeOf(n proto.NodeInfo) string {
	if n.Outcome != "" {
		return n.Outcome
	}
	return n.Status
}

// printNodeSummary is the table of node outcomes at the end of a run.
func printNodeSummary(w io.Writer, nodes []proto.NodeInfo) {
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tSTATUS\tOUTCOME")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.ID, n.Status, outcomeOf(n))
	}
	tw.Flush()
}

// nodeLogWriters returns, per node, a writer that prefixes each line with the node id
// (coloured when color is set) and writes whole lines to out.
func nodeLogWriters(out io.Writer, color bool) func(node string) io.Writer {
	// ANSI colours of the prefixes, by node order.
	colors := []string{"36", "33", "32", "35", "34", "31", "96", "93", "92", "95"}
	lw := &lockedWriter{w: out}
	i := 0
	return func(node string) io.Writer {
		prefix := node + ": "
		if color {
			prefix = "\x1b[" + colors[i%len(colors)] + "m" + node + ":\x1b[0m "
		}
		i++
		return &prefixWriter{prefix: prefix, w: lw}
	}
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}
