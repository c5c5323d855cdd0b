package main

import (
	"context"
	"fmt"
	"github.com/doractl/doractl/internal/waitgroup"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/dataflow"
	"github.com/doractl/doractl/proto"
	"github.com/spf13/cobra"
)

type startOpts struct {
	name   string
	attach bool
	detach bool
	grace  time.Duration
}

func newStartCmd(g *globalOpts) *cobra.Command {
	o := &startOpts{}
	cmd := &cobra.Command{
		Use:   "start DATAFLOW.yml",
		Short: "Start a dataflow on the cluster",
		Long: `Start a dataflow described by a dora descriptor. The file is validated first; node paths
relative to it resolve against its folder on the machine that runs the node, and a bare
name (no slash) is the file of that name in that folder if there is one, else from $PATH.

Attached (the default) the command streams every node's log, prefixed with the node id,
until the dataflow ends. The first Ctrl-C stops the dataflow gracefully, a second one
forces it. --detach prints the dataflow's UUID and returns.`,
		Example: "  doractl start examples/rust-dataflow/dataflow.yml --name demo --detach\n  doractl start dataflow.yml            # attached: Ctrl-C stops it",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.attach && o.detach {
				return fmt.Errorf("--attach and --detach exclude each other")
			}
			return runStart(cmd.Context(), g.client(), args[0], o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.name, "name", "", "name of the dataflow (unique among running ones; default generated)")
	cmd.Flags().BoolVar(&o.attach, "attach", false, "stay attached and stream logs until the dataflow ends (the default)")
	cmd.Flags().BoolVar(&o.detach, "detach", false, "print the dataflow UUID and return")
	cmd.Flags().DurationVar(&o.grace, "grace-duration", defaultGrace, "grace used by the stop that Ctrl-C sends when attached")
	return cmd
}

func runStart(ctx context.Context, c *client.Client, path string, o *startOpts, out, errw io.Writer) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read dataflow: %w", err)
	}
	d, err := dataflow.Parse(text, path)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", path, err)
	}
	d.Dir = filepath.Dir(abs)
	printPathWarnings(errw, d)
	sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	rep, err := c.Start(sctx, proto.APIStartRequest{
		Name: o.name, Descriptor: string(text), Path: abs, WorkingDir: filepath.Dir(abs),
	})
	if err != nil {
		return err
	}
	if o.detach {
		fmt.Fprintln(out, rep.ID)
		return nil
	}
	fmt.Fprintf(errw, "dataflow %s (%s) started; Ctrl-C to stop it\n", rep.Name, rep.ID)
	return attach(ctx, c, rep.ID, o.grace, out, errw)
}

// logDrain is how long attach lets the log streams of an ended dataflow finish.
const logDrain = 3 * time.Second

// attach streams every node's log until the dataflow ends. The first interrupt stops the
// dataflow gracefully, the second forces.
func attach(ctx context.Context, c *client.Client, id string, grace time.Duration, out, errw io.Writer) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	streaming := map[string]bool{}
	announced := map[string]bool{}
	lw := &lockedWriter{w: out}
	stopResult := make(chan error, 2)
	interrupts := 0
	var firstSignal time.Time
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		d, err := c.Get(rctx, id)
		rcancel()
		if err == nil {
			for _, n := range d.Nodes {
				if !streaming[n.ID] {
					streaming[n.ID] = true
					wg.Add(1)
					go func(node string) {
						defer wg.Done()
						_ = c.Logs(ctx, id, node, 0, true, &prefixWriter{prefix: node + ": ", w: lw})
					}(n.ID)
				}
			}
			for _, n := range d.Nodes {
				// A node that failed or was lost while the others run is news now, not
				// only in the final table.
				if (n.Status == proto.NodeFailed || n.Status == proto.NodeLost) && !announced[n.ID] {
					announced[n.ID] = true
					fmt.Fprintf(errw, "node %q %s\n", n.ID, outcomeOf(n))
				}
			}
			if d.Status == proto.DataflowFinished || d.Status == proto.DataflowFailed {
				// Each followed log ends by itself once its node's last lines are read;
				// give them that long before cutting them.
				if !waitgroup.Within(&wg, logDrain) {
					cancel()
				}
				wg.Wait()
				printNodeOutcomes(errw, d.Nodes, nil)
				if d.Status == proto.DataflowFailed {
					return &exitError{code: 1, msg: fmt.Sprintf("dataflow %s failed: %s", d.Name, orDash(d.Reason))}
				}
				return nil
			}
		}
		select {
		case <-t.C:
		case <-sigs:
			if interrupts > 0 && time.Since(firstSignal) < duplicateSignalWindow {
				continue // the same signal delivered twice, not a second Ctrl-C
			}
			if interrupts == 0 {
				firstSignal = time.Now()
			}
			interrupts++
			force := interrupts > 1
			if force {
				fmt.Fprintln(errw, "\nforcing stop (killing every node)...")
			} else {
				fmt.Fprintf(errw, "\nstopping (grace %s); Ctrl-C again to force\n", grace)
			}
			go func() {
				to := defaultStopTimeout(grace)
				sctx, scancel := context.WithTimeout(context.Background(), to+clientSlack)
				defer scancel()
				_, err := c.Stop(sctx, id, proto.APIStopRequest{Grace: grace.String(), Timeout: to.String(), Force: force})
				stopResult <- err
			}()
		case err := <-stopResult:
			if err != nil {
				fmt.Fprintln(errw, "stop:", oneLine(err))
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// prefixWriter writes each complete line with a prefix; a partial line waits for its end.
type prefixWriter struct {
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := indexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(p.prefix), p.buf[:i+1]...)
		if _, err := p.w.Write(line); err != nil {
			return 0, err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
