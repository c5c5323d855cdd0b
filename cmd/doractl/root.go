package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/doractl/doractl/client"
	"github.com/spf13/cobra"
)

type globalOpts struct {
	coordinatorAddr string
	key             []byte // cluster key from DORACTL_CLUSTER_KEY: the API requires it when set
}

func newRootCmd() *cobra.Command {
	g := &globalOpts{}
	// The commands that call the coordinator's control API.
	apiCommands := []string{"up", "destroy", "start", "stop", "list", "logs", "members"}
	root := &cobra.Command{
		Use:   "doractl",
		Short: "Run dora dataflows on robot fleets and lab clusters that survive flaky networks",
		Long: `doractl runs dataflows: YAML graphs of nodes (processes) whose outputs feed other
nodes' inputs, in the dora descriptor format. A coordinator places nodes on one daemon
per machine; coordinator and daemons share a gossip ring, so a daemon busy with work is
never declared dead and a dead one never makes a command hang (a daemon whose process
stops running is: after about 6 s on --profile lan, after a 20 s grace on flaky and wan).

Quick start on one machine:
  doractl up                                   # coordinator + daemon, in the background
  doractl start dataflow.yml --name demo --detach
  doractl list
  doractl logs demo NODE --follow
  doractl stop demo
  doractl destroy                              # stop everything; no process left`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// Only the commands that call the control API need the key (the servers take
			// theirs from --cluster-key; check works offline).
			if !slices.Contains(apiCommands, cmd.Name()) {
				return nil
			}
			k, err := clusterKey("")
			if err != nil {
				return fmt.Errorf("DORACTL_CLUSTER_KEY: %w", err)
			}
			g.key = k
			return nil
		},
	}
	def := client.DefaultAddr()
	root.PersistentFlags().StringVar(&g.coordinatorAddr, "coordinator-addr", def,
		"coordinator control address host:port (env DORA_COORDINATOR_ADDR)")
	root.AddCommand(
		newCoordinatorCmd(),
		newDaemonCmd(),
		newUpCmd(g),
		newDestroyCmd(g),
		newCheckCmd(),
		newStartCmd(g),
		newRunCmd(),
		newStopCmd(g),
		newListCmd(g),
		newLogsCmd(g),
		newMembersCmd(g),
		newVersionCmd(),
		newDocsCmd(),
	)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	withUsage(root)
	return root
}

func (g *globalOpts) client() *client.Client { return client.New(g.coordinatorAddr).WithKey(g.key) }

// oneLine folds an error to a single line, for a message inside another line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// errorLines formats an error for stderr: "Error: " and its first line, then each further
// non-empty line indented (several problems of one descriptor, cobra's suggestions).
func errorLines(err error) string {
	var b strings.Builder
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimRight(line, " \t")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("Error: " + line)
			continue
		}
		b.WriteString("\n  " + strings.TrimLeft(line, " \t"))
	}
	if b.Len() == 0 {
		return "Error: " + err.Error()
	}
	return b.String()
}

// withUsage makes every command's argument errors say how the command is used.
func withUsage(c *cobra.Command) {
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return fmt.Errorf("%w\nusage: %s (see '%s --help')", err, cmd.UseLine(), cmd.CommandPath())
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		withUsage(sub)
	}
}

func checkOutputFormat(f string) error {
	if f != "table" && f != "json" {
		return fmt.Errorf("unknown output format %q: use table or json", f)
	}
	return nil
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
