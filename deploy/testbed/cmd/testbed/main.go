// Command testbed builds a network test bed of namespaces by hand and injects
// faults into it. The bed lives in the kernel between invocations: each
// command finds it again from its namespaces ("<name>-br", "<name>-h1", ...).
//
//	testbed up --hosts 4 --name tb
//	testbed status
//	testbed partition h1 h2,h3      (h1 on one side, h2 and h3 on the other)
//	testbed oneway h1 h2            (drop h1 -> h2 only)
//	testbed loss h3 20              (or: loss all 20)
//	testbed bandwidth h2 1mbit      (or: bandwidth h2 off)
//	testbed freeze h1 | thaw h1 | kill h1
//	testbed exec h1 -- ping -c1 10.231.7.2
//	testbed heal
//	testbed down --name tb
//	testbed cleanup [--stale] PREFIX
//
// --name defaults to $TESTBED_NAME, then "tb".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/doractl/doractl/deploy/testbed"
)

const usage = `usage: testbed COMMAND [ARGS] [--name NAME]

  up [--hosts N] [--subnet CIDR]   build the bed
  down                             remove the bed (processes, namespaces, rules)
  status                           hosts, addresses, nftables rules and qdiscs
  partition A[,A...] B[,B...]      drop all traffic between the two sets
  oneway FROM TO                   drop packets FROM -> TO only
  loss HOST|all PERCENT            random loss of IP traffic, TCP included
  bandwidth HOST RATE|off          tc rate limit ("1mbit") on HOST's link
  freeze HOST | thaw HOST          SIGSTOP / SIGCONT every process of HOST
  kill HOST                        SIGKILL every process of HOST
  heal                             remove every fault, thaw frozen hosts
  exec HOST [--] CMD [ARGS...]     run CMD inside HOST's namespace
  cleanup [--stale] PREFIX         remove every namespace named PREFIX*; with
                                   --stale only beds of test runs that died

--name NAME selects the bed (default $TESTBED_NAME, then "tb"); -v logs commands.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "testbed: ") {
			msg = "testbed: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0, nil
	}
	fs := flag.NewFlagSet("testbed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	defName := os.Getenv("TESTBED_NAME")
	if defName == "" {
		defName = "tb"
	}
	name := fs.String("name", defName, "bed name")
	hosts := fs.Int("hosts", 3, "number of hosts (up)")
	subnet := fs.String("subnet", "", "IPv4 subnet (up)")
	verbose := fs.Bool("v", false, "log every command")
	stale := fs.Bool("stale", false, "only beds whose maker process is gone (cleanup)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2, err
	}
	if len(pos) == 0 {
		fmt.Fprint(stderr, usage)
		return 2, errors.New("no command")
	}
	verb := pos[0]
	pos = pos[1:]
	cfg := testbed.Config{}
	if *verbose {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "testbed", Level: hclog.Debug, Output: stderr})
	}

	switch verb {
	case "up":
		if err := want(pos, 0, verb); err != nil {
			return 2, err
		}
		cfg.Name, cfg.Hosts, cfg.Subnet, cfg.Detached = *name, *hosts, *subnet, true
		b, err := testbed.New(ctx, cfg)
		if err != nil {
			return 1, err
		}
		printHosts(stdout, b)
		return 0, nil
	case "down":
		if err := want(pos, 0, verb); err != nil {
			return 2, err
		}
		return 0, testbed.Cleanup(*name + "-")
	case "cleanup":
		if err := want(pos, 1, verb); err != nil {
			return 2, err
		}
		if *stale {
			return 0, testbed.CleanupStale(pos[0])
		}
		return 0, testbed.Cleanup(pos[0])
	}

	switch verb {
	case "status", "partition", "oneway", "loss", "bandwidth", "freeze", "thaw", "kill", "heal", "exec":
	default:
		fmt.Fprint(stderr, usage)
		return 2, fmt.Errorf("unknown command %q", verb)
	}
	b, err := testbed.Open(ctx, *name, cfg)
	if err != nil {
		return 1, err
	}
	host := func(s string) (*testbed.Host, error) {
		if h := b.Host(s); h != nil {
			return h, nil
		}
		var names []string
		for _, h := range b.Hosts() {
			names = append(names, h.Name)
		}
		return nil, fmt.Errorf("no host %q in bed %s (hosts: %s)", s, *name, strings.Join(names, " "))
	}
	hostList := func(s string) ([]*testbed.Host, error) {
		var out []*testbed.Host
		for _, n := range strings.Split(s, ",") {
			h, err := host(n)
			if err != nil {
				return nil, err
			}
			out = append(out, h)
		}
		return out, nil
	}

	switch verb {
	case "status":
		printHosts(stdout, b)
		for _, h := range b.Hosts() {
			rules, err := b.Rules(h)
			if err != nil {
				return 1, err
			}
			fmt.Fprintf(stdout, "\n== %s\n%s", h.Name, rules)
		}
		return 0, nil
	case "partition":
		if err := want(pos, 2, verb); err != nil {
			return 2, err
		}
		a, err := hostList(pos[0])
		if err != nil {
			return 2, err
		}
		c, err := hostList(pos[1])
		if err != nil {
			return 2, err
		}
		return 0, b.Partition(a, c)
	case "oneway":
		if err := want(pos, 2, verb); err != nil {
			return 2, err
		}
		from, err := host(pos[0])
		if err != nil {
			return 2, err
		}
		to, err := host(pos[1])
		if err != nil {
			return 2, err
		}
		return 0, b.OneWay(from, to)
	case "loss":
		if err := want(pos, 2, verb); err != nil {
			return 2, err
		}
		p, err := strconv.Atoi(strings.TrimSuffix(pos[1], "%"))
		if err != nil {
			return 2, fmt.Errorf("loss: percent %q: %w", pos[1], err)
		}
		if pos[0] == "all" {
			return 0, b.LossAll(p)
		}
		h, err := host(pos[0])
		if err != nil {
			return 2, err
		}
		return 0, b.Loss(h, p)
	case "bandwidth":
		if err := want(pos, 2, verb); err != nil {
			return 2, err
		}
		h, err := host(pos[0])
		if err != nil {
			return 2, err
		}
		rate := pos[1]
		if rate == "off" {
			rate = ""
		}
		return 0, b.Bandwidth(h, rate)
	case "freeze", "thaw", "kill":
		if err := want(pos, 1, verb); err != nil {
			return 2, err
		}
		h, err := host(pos[0])
		if err != nil {
			return 2, err
		}
		switch verb {
		case "freeze":
			return 0, b.Freeze(h)
		case "thaw":
			return 0, b.Thaw(h)
		}
		return 0, b.Kill(h)
	case "heal":
		if err := want(pos, 0, verb); err != nil {
			return 2, err
		}
		return 0, b.Heal()
	case "exec":
		if len(pos) < 2 {
			return 2, errors.New("exec: want HOST CMD [ARGS...]")
		}
		h, err := host(pos[0])
		if err != nil {
			return 2, err
		}
		cmd := h.Command(ctx, pos[1], pos[2:]...)
		cmd.SysProcAttr = nil // stay in the terminal's foreground group
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
		err = cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		if err != nil {
			return 1, fmt.Errorf("exec on %s: %w", h.Name, err)
		}
		return 0, nil
	}
	return 2, fmt.Errorf("unknown command %q", verb)
}

// parseInterspersed parses flags placed anywhere among the positional
// arguments. For "exec HOST", the rest (after an optional "--") is the
// command and left alone.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if len(pos) == 2 && pos[0] == "exec" {
			return append(pos, args...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func want(pos []string, n int, verb string) error {
	if len(pos) != n {
		return fmt.Errorf("%s: want %d arguments, got %d (%s)", verb, n, len(pos), strings.Join(pos, " "))
	}
	return nil
}

func printHosts(w io.Writer, b *testbed.Bed) {
	fmt.Fprintf(w, "bed %s  subnet %s  bridge namespace %s\n", b.Name(), b.Subnet(), b.BridgeNamespace())
	for _, h := range b.Hosts() {
		fmt.Fprintf(w, "%-4s %-15s netns %s\n", h.Name, h.Addr, h.Namespace)
	}
}
