package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
)

func newLogsCmd(g *globalOpts) *cobra.Command {
	var follow bool
	var tail int
	cmd := &cobra.Command{
		Use:   "logs DATAFLOW NODE",
		Short: "Print a node's log (stdout and stderr)",
		Long: `Print the log of one node of a dataflow, given by name, UUID or a unique UUID prefix
of 4+ characters.
The log holds the node's stdout and stderr, kept by the daemon that runs it. --follow
keeps streaming until the node ends or you press Ctrl-C; --tail N starts N lines before
the end.`,
		Example: "  doractl logs demo rust-sink --follow\n  doractl logs demo rust-node --tail 20",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if !follow {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
			} else {
				var stop context.CancelFunc
				ctx, stop = signalContext(ctx)
				defer stop()
			}
			err := g.client().Logs(ctx, args[0], args[1], tail, follow, cmd.OutOrStdout())
			if follow && ctx.Err() != nil {
				return nil // interrupted by the user
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming new lines until the node ends")
	cmd.Flags().IntVar(&tail, "tail", 0, "start this many lines before the end (0 = whole log)")
	return cmd
}
