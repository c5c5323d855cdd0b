package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/daemon"
	"github.com/doractl/doractl/proto"
)

type upOpts struct {
	daemons    int
	machines   []string
	profile    string
	daemonPort int
	gossipPort int
	nodePort   int
	wait       time.Duration
	defMachine string // --default-machine
	profileSet bool   // --profile given explicitly
	// machinesSet is set when --machines or --daemons was given; without them a
	// re-run keeps the daemons an earlier `up` started.
	machinesSet bool
}

func newUpCmd(g *globalOpts) *cobra.Command {
	o := &upOpts{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a local cluster (coordinator + daemon) in the background; idempotent",
		Long: `Start a coordinator and a daemon on this machine, detached, unless they already run.
Their logs and pid files are in $DORACTL_STATE_DIR/up (default ~/.local/state/doractl/up);
node logs are in $DORACTL_STATE_DIR/daemons/<daemon>/ (read them with 'doractl logs').
Run it again at any time: what already runs is left alone. --daemons N starts N daemons
with machine ids HOST, HOST-2, ... or the ids given by --machines (handy to try
multi-machine placement and failures). Nodes without a deploy section go to this host's
daemon, or with --machines that has none, to the first machine listed (--default-machine
changes it).
'doractl destroy' stops everything it started.`,
		Example: "  doractl up\n  doractl up --machines robot-a,robot-b\n  doractl --coordinator-addr 127.0.0.1:7012 up --daemon-port 7290 --gossip-port 7292",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.profileSet = cmd.Flags().Changed("profile")
			o.machinesSet = cmd.Flags().Changed("machines") || cmd.Flags().Changed("daemons")
			return runUp(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.daemons, "daemons", 1, "number of local daemons")
	f.StringSliceVar(&o.machines, "machines", nil, "machine ids of the local daemons (overrides --daemons), e.g. robot-a,robot-b")
	f.StringVar(&o.profile, "profile", "lan", "liveness profile: lan, wan, local or flaky")
	f.IntVar(&o.daemonPort, "daemon-port", proto.DefaultDaemonPort, "coordinator's port for daemon links")
	f.IntVar(&o.gossipPort, "gossip-port", proto.DefaultGossipPort, "coordinator's gossip port")
	f.IntVar(&o.nodePort, "node-port", proto.DefaultNodePort, "first daemon's port for dynamic nodes (others pick free ports)")
	f.DurationVar(&o.wait, "wait", 20*time.Second, "how long to wait for the cluster to be ready")
	f.StringVar(&o.defMachine, "default-machine", "", "machine id for nodes without a deploy section (default: this host's daemon, else the first of --machines)")
	return cmd
}

func upDir() string { return filepath.Join(stateDir(), "up") }

// defaultMachineFor is where `up` sends nodes without a deploy section: "" (the
// coordinator's own machine) when a daemon runs on this host's machine id, else the
// first machine listed.
func defaultMachineFor(machines []string) string {
	host := machineIDs(1)[0]
	for _, m := range machines {
		if m == host {
			return ""
		}
	}
	if len(machines) == 0 {
		return ""
	}
	return machines[0]
}

func machineIDs(n int) []string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "local"
	}
	ids := []string{host}
	for i := 2; i <= n; i++ {
		ids = append(ids, host+"-"+strconv.Itoa(i))
	}
	return ids
}

var validMachineID = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// checkMachineIDs rejects invalid and duplicate ids given to --machines.
func checkMachineIDs(ids []string) error {
	seen := map[string]bool{}
	for _, m := range ids {
		if !validMachineID.MatchString(m) {
			return fmt.Errorf("--machines: invalid machine id %q (use letters, digits, '.', '_' and '-')", m)
		}
		if seen[m] {
			return fmt.Errorf("--machines: duplicate machine id %q", m)
		}
		seen[m] = true
	}
	return nil
}

// portFree reports whether addr can be listened on now.
func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// lastLogLine returns the last non-empty line of the log at path.
func lastLogLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log: " + err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n\r\t "), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return last
	}
	return "empty log " + path
}

// errStopWaiting ends waitFor at once.
type errStopWaiting struct{ error }

func runUp(ctx context.Context, g *globalOpts, o *upOpts, out io.Writer) error {
	if o.daemons < 1 {
		return fmt.Errorf("--daemons must be at least 1")
	}
	if err := checkMachineIDs(o.machines); err != nil {
		return err
	}
	if !o.profileSet {
		if prev := earlierProfile(upDir()); prev != "" && prev != o.profile {
			o.profile = prev
			fmt.Fprintf(out, "keeping the profile of the earlier up: %s (destroy first to change it)\n", prev)
		}
	}
	machines := o.machines
	if !o.machinesSet {
		if earlier := earlierMachines(upDir()); len(earlier) > 0 {
			machines = earlier
			fmt.Fprintf(out, "keeping the machines of the earlier up: %s (give --machines to change them)\n", strings.Join(earlier, ", "))
		}
	}
	if len(machines) == 0 {
		machines = machineIDs(o.daemons)
	}
	dir := upDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create state folder: %w", err)
	}
	host, _, err := net.SplitHostPort(g.coordinatorAddr)
	if err != nil {
		return fmt.Errorf("--coordinator-addr %q: %w", g.coordinatorAddr, err)
	}
	c := g.client()
	ctx, cancel := context.WithTimeout(ctx, o.wait)
	defer cancel()

	hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
	health, herr := c.Health(hctx)
	hcancel()
	if herr == nil {
		fmt.Fprintf(out, "coordinator already running at %s\n", g.coordinatorAddr)
		if o.profileSet && !strings.EqualFold(health.Profile, o.profile) {
			running := health.Profile
			if running == "" {
				running = "no gossip"
			}
			fmt.Fprintf(out, "note: coordinator already running with profile %s; --profile %s not applied (destroy first to change it)\n", running, o.profile)
		}
		if len(g.key) > 0 && !health.ClusterKey {
			fmt.Fprintf(out, "warning: coordinator already running without a cluster key; DORACTL_CLUSTER_KEY not applied: its API and registrations stay open (destroy first to add the key)\n")
		}
	} else {
		defMachine := o.defMachine
		if defMachine == "" {
			defMachine = defaultMachineFor(machines)
		}
		args := []string{"coordinator",
			"--control-addr", g.coordinatorAddr,
			"--daemon-addr", net.JoinHostPort(host, strconv.Itoa(o.daemonPort)),
			"--gossip-addr", host, "--gossip-port", strconv.Itoa(o.gossipPort),
			"--profile", o.profile,
			"--data-dir", filepath.Join(stateDir(), "coordinator"),
		}
		if defMachine != "" {
			args = append(args, "--default-machine", defMachine)
			fmt.Fprintf(out, "note: nodes without a deploy section go to machine %s\n", defMachine)
		}
		pid, err := spawnDetached("coordinator", dir, args)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, profileFile), []byte(o.profile+"\n"), 0o644); err != nil {
			return fmt.Errorf("record the profile: %w", err)
		}
		fmt.Fprintf(out, "starting coordinator (pid %d, log %s)\n", pid, filepath.Join(dir, "coordinator.log"))
		if err := waitFor(ctx, func() error { _, err := c.Health(ctx); return err }); err != nil {
			return fmt.Errorf("coordinator did not come up within %s (see %s): %w", o.wait, filepath.Join(dir, "coordinator.log"), err)
		}
	}

	members, err := c.Members(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	var spawned []string
	// The node port goes to the first daemon started while it is free. Held by a daemon
	// of an earlier `up` that still runs, it is taken: no note then.
	np := net.JoinHostPort("127.0.0.1", strconv.Itoa(o.nodePort))
	nodePortDecided := false
	earlier, _ := readPidFiles(dir)
	heldByOurs := false
	for _, pf := range livePids(earlier) {
		if pf.name() != "coordinator" {
			heldByOurs = true
		}
	}
	for _, m := range machines {
		name := "daemon-" + m
		want[name] = true
		pf, recorded := readPidFile(filepath.Join(dir, name+".pid"))
		crashed := recorded && !pf.alive() // ours, and gone, whatever gossip still says
		if memberAlive(members, name) && !crashed {
			fmt.Fprintf(out, "daemon %s already running\n", name)
			continue
		}
		if recorded && !crashed {
			// Still running, not (yet) registered: e.g. reconnecting to a coordinator
			// that was just restarted. A second daemon of the same name would fight it.
			fmt.Fprintf(out, "daemon %s already running (pid %d), waiting for it to reconnect\n", name, pf.pid)
			continue
		}
		nodeAddr := "127.0.0.1:0"
		if !nodePortDecided {
			nodePortDecided = true
			switch {
			case portFree(np):
				nodeAddr = np
				fmt.Fprintf(out, "%s listens for dynamic nodes on %s\n", name, np)
			case !heldByOurs:
				fmt.Fprintf(out, "note: node port %s is in use; %s listens for dynamic nodes on a free port\n", np, name)
			}
		}
		args := []string{"daemon",
			"--coordinator", net.JoinHostPort(host, strconv.Itoa(o.daemonPort)),
			"--machine-id", m, "--name", name,
			"--listen-addr", net.JoinHostPort(host, "0"),
			"--node-addr", nodeAddr,
			"--gossip-addr", host, "--gossip-port", "0",
			"--profile", o.profile,
			"--state-dir", filepath.Join(stateDir(), "daemons"), // the daemon keeps daemons/<name>/
		}
		pid, err := spawnDetached(name, dir, args)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "starting %s (pid %d, log %s)\n", name, pid, filepath.Join(dir, name+".log"))
		spawned = append(spawned, name)
	}
	err = waitFor(ctx, func() error {
		for _, name := range spawned {
			if _, ok := livePidFile(dir, name); !ok {
				return errStopWaiting{fmt.Errorf("%s exited: %s", name, lastLogLine(filepath.Join(dir, name+".log")))}
			}
		}
		ms, err := c.Members(ctx)
		if err != nil {
			return err
		}
		for name := range want {
			if !memberAlive(ms, name) {
				return fmt.Errorf("%s not alive yet (its log: %s)", name, lastLogLine(filepath.Join(dir, name+".log")))
			}
		}
		return nil
	})
	if stop := (errStopWaiting{}); errors.As(err, &stop) {
		return stop.error
	}
	if err != nil {
		return fmt.Errorf("cluster not ready within %s (logs in %s): %w", o.wait, dir, err)
	}
	alive := len(want)
	if ms, err := c.Members(ctx); err == nil {
		alive = 0
		for _, m := range ms {
			if m.Role == "daemon" && m.Status == proto.MemberAlive {
				alive++
			}
		}
	}
	fmt.Fprintf(out, "cluster up: coordinator at %s, %d daemon(s) alive\n", g.coordinatorAddr, alive)
	// up adds machines, never removes them: say which daemons of an earlier up run on.
	for _, pf := range livePids(earlier) {
		if name := pf.name(); name != "coordinator" && !want[name] {
			fmt.Fprintf(out, "note: %s of an earlier up keeps running (not in --machines; doractl destroy stops everything)\n", name)
		}
	}
	return nil
}

// earlierMachines is the machine ids of the daemons an earlier `up` started (running
// or not: a crashed one is started again), in order.
func earlierMachines(dir string) []string {
	pfs, _ := readPidFiles(dir)
	var out []string
	for _, pf := range pfs {
		if m, ok := strings.CutPrefix(pf.name(), "daemon-"); ok {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// profileFile records the gossip profile of the cluster `up` started, so that a re-run
// restarting a crashed process uses the same one.
const profileFile = "profile"

// earlierProfile is the profile an earlier `up` started the cluster with, or "".
func earlierProfile(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, profileFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// livePidFile returns the pid file `up` wrote for name in dir when its process still runs.
func livePidFile(dir, name string) (pidFile, bool) {
	pfs, _ := readPidFiles(dir)
	for _, pf := range pfs {
		if pf.name() == name && pf.alive() {
			return pf, true
		}
	}
	return pidFile{}, false
}

func memberAlive(ms []proto.Member, name string) bool {
	for _, m := range ms {
		if m.Name == name && m.Status == proto.MemberAlive {
			return true
		}
	}
	return false
}

// waitFor polls cond until it succeeds or ctx ends; the error is the last reason.
// An errStopWaiting from cond ends it at once.
func waitFor(ctx context.Context, cond func() error) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		if stop := (errStopWaiting{}); errors.As(last, &stop) {
			return last
		}
		select {
		case <-ctx.Done():
			return last
		case <-t.C:
		}
	}
}

func newDestroyCmd(g *globalOpts) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Stop every dataflow, daemon and the coordinator; leave no process behind",
		Long: `Stop every running dataflow (bounded by --grace-duration, then SIGTERM and SIGKILL), then
every daemon and the coordinator. Processes started by 'doractl up' that do not exit in
time are killed, so nothing is left behind: node processes that a dead daemon left
running are killed too. A coordinator that does not answer within 5s (frozen, say) or at
all is not waited for: the processes 'up' started on this machine are stopped directly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDestroy(cmd.Context(), g.client(), grace, cmd.OutOrStdout())
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-duration", 5*time.Second, "grace given to nodes before SIGTERM")
	return cmd
}

func runDestroy(ctx context.Context, c *client.Client, grace time.Duration, out io.Writer) error {
	deadline := defaultStopTimeout(grace) + clientSlack
	ctx, cancel := context.WithTimeout(ctx, deadline+5*time.Second)
	defer cancel()
	pids, _ := readPidFiles(upDir())
	// A coordinator that does not answer a health check in time (frozen, say) would
	// hold the destroy until its deadline: the local processes are stopped instead.
	hctx, hcancel := context.WithTimeout(ctx, destroyHealthWait)
	_, err := c.Health(hctx)
	hcancel()
	unanswered := ""
	var rep *proto.APIDestroyReply
	switch {
	case err == nil:
		rep, err = c.Destroy(ctx, proto.APIDestroyRequest{Grace: grace.String()})
	case errors.Is(err, context.DeadlineExceeded) && len(livePids(pids)) > 0:
		unanswered = fmt.Sprintf("coordinator at %s did not answer within %s", c.Addr(), destroyHealthWait)
	}
	reached := err == nil
	if reached {
		for _, d := range rep.Dataflows {
			fmt.Fprintf(out, "stopped dataflow %s (%s): %s\n", d.Name, d.ID, nodeCounts(d.Nodes))
		}
		// Daemons `up` started that never registered (a wrong key, a wrong port) are not
		// told by the coordinator: stop them here.
		var unregistered []pidFile
		for _, p := range livePids(pids) {
			if p.name() != "coordinator" && !slices.Contains(rep.Daemons, p.name()) {
				unregistered = append(unregistered, p)
			}
		}
		fmt.Fprintf(out, "destroying %d daemon(s) and the coordinator\n", len(rep.Daemons)+len(unregistered))
		for _, p := range unregistered {
			fmt.Fprintf(out, "stopping %s (pid %d): not registered with the coordinator\n", p.name(), p.pid)
			p.terminate()
		}
	} else if unanswered == "" && !errors.Is(err, client.ErrUnreachable) {
		return err
	} else if len(livePids(pids)) == 0 {
		fmt.Fprintf(out, "nothing to destroy: no coordinator at %s\n", c.Addr())
		return nil
	} else {
		if unanswered == "" {
			unanswered = "no coordinator answers at " + c.Addr()
		}
		fmt.Fprintf(out, "%s; stopping the local processes\n", unanswered)
		for _, p := range livePids(pids) {
			p.terminate()
		}
	}
	// Wait for every process `up` started to exit; kill what does not.
	werr := waitFor(ctx, func() error {
		if live := livePids(pids); len(live) > 0 {
			return fmt.Errorf("%s still running", live[0].name())
		}
		if reached {
			hctx, hcancel := context.WithTimeout(ctx, time.Second)
			defer hcancel()
			if _, err := c.Health(hctx); err == nil {
				return fmt.Errorf("coordinator still answering")
			}
		}
		return nil
	})
	if werr != nil {
		for _, p := range livePids(pids) {
			fmt.Fprintf(out, "killing %s (pid %d): did not exit in time\n", p.name(), p.pid)
			_ = p.signal(syscall.SIGKILL)
		}
	}
	for _, p := range pids {
		if !p.alive() {
			p.remove()
		}
	}
	killLeftNodes(out)
	_ = os.Remove(filepath.Join(upDir(), profileFile))
	fmt.Fprintln(out, "destroyed")
	return nil
}

// destroyHealthWait bounds destroy's first health check of the coordinator.
const destroyHealthWait = 5 * time.Second

// killLeftNodes kills the node processes that daemons of this state folder recorded and
// left running when they died (a SIGKILL, or destroy's own kill of a frozen daemon).
func killLeftNodes(out io.Writer) {
	dirs, _ := filepath.Glob(filepath.Join(stateDir(), "daemons", "*"))
	for _, dir := range dirs {
		left, err := daemon.KillLeftNodes(dir, hclog.NewNullLogger())
		for _, n := range left {
			fmt.Fprintf(out, "killed node %s of dataflow %s (pid %d): left running by daemon %s\n", n.Node, n.Dataflow, n.PID, filepath.Base(dir))
		}
		if err != nil {
			fmt.Fprintf(out, "warning: %v\n", err)
		}
	}
}

func livePids(ps []pidFile) []pidFile {
	var out []pidFile
	for _, p := range ps {
		if p.alive() {
			out = append(out, p)
		}
	}
	return out
}
