package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/doractl/doractl/client"
	"github.com/spf13/cobra"
)

type globalOpts struct {
	coordinatorAddr string
}

func newRootCmd() *cobra.Command {
	g := &globalOpts{}
	root := &cobra.Command{
		Use:   "doractl",
		Short: "Run dora dataflows on robot fleets and lab clusters that survive flaky networks",
		Long: `doractl runs dataflows: YAML graphs of nodes (processes) whose outputs feed other
nodes' inputs, in the dora descriptor format. A coordinator places nodes on one daemon
per machine; coordinator and daemons share a gossip ring, so a busy daemon is never
declared dead and a dead one never makes a command hang.

Quick start on one machine:
  doractl up                                   # coordinator + daemon, in the background
  doractl start dataflow.yml --name demo --detach
  doractl list
  doractl logs demo NODE --follow
  doractl stop demo
  doractl destroy                              # stop everything; no process left`,
		SilenceUsage:  true,
		SilenceErrors: true,
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
	return root
}

func (g *globalOpts) client() *client.Client { return client.New(g.coordinatorAddr) }

// oneLine folds an error to a single line: users read it in a terminal or a CI log.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
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
