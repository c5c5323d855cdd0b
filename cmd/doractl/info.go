package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/doractl/doractl/dataflow"
	"github.com/spf13/cobra"
)

func newListCmd(g *globalOpts) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List dataflows: UUID, name, status, nodes, machines, reason",
		Long: `List every dataflow the coordinator knows, running and ended.

Status is one of running, stopping, finished, failed. With -o json the output is an array
of {id, name, status, nodes: [{id, machine, daemon, status}], ...} for scripts.`,
		Example: "  doractl list\n  doractl list -o json | jq '.[] | select(.status==\"running\") | .id'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			dfs, err := g.client().List(ctx)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), dfs)
			}
			printDataflows(cmd.OutOrStdout(), dfs)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func newMembersCmd(g *globalOpts) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "members",
		Short: "Show the gossip ring: name, role, machine, address, status",
		Long: `Show every member of the cluster's gossip ring as the coordinator sees it.

Status is alive, suspect (not answering directly; its operations keep waiting), dead
(confirmed: gossip declared it and its control link does not answer, or its process is
provably gone) or left (announced a graceful leave). SINCE and REASON say when and how.`,
		Example: "  doractl members\n  doractl members -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			ms, err := g.client().Members(ctx)
			if err != nil {
				return err
			}
			if output == "json" {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			printMembers(cmd.OutOrStdout(), ms)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func newCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check DATAFLOW.yml",
		Short: "Validate a dataflow descriptor without running it",
		Long: `Parse and validate a dataflow descriptor: unknown fields, duplicate node ids, inputs that
name no node or output, bad timers, unsupported operators. Errors name the file,
line:column and node. Exit status 0 when valid.`,
		Example: "  doractl check examples/rust-dataflow/dataflow.yml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := dataflow.ParseFile(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			tw := newTable(w)
			fmt.Fprintln(tw, "NODE\tPATH\tINPUTS\tOUTPUTS\tMACHINE")
			for _, n := range d.Nodes {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", n.ID, n.Path, len(n.Inputs), len(n.Outputs), orDash(n.Deploy.Machine))
			}
			tw.Flush()
			fmt.Fprintf(w, "%s: valid, %s\n", args[0], plural(len(d.Nodes), "node"))
			printPathWarnings(cmd.ErrOrStderr(), d)
			return nil
		},
	}
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the doractl version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "doractl %s\n", version)
		},
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// pathWarnings lists nodes whose executable, resolved on this machine against the
// descriptor's folder (or deploy.working_dir), is missing, a directory or not
// executable; a bare name counts as missing when it is neither in that folder nor in
// PATH. Dynamic and shell nodes and git nodes are not checked.
func pathWarnings(d *dataflow.Descriptor) []string {
	var out []string
	for _, n := range d.Nodes {
		if n.Deploy.WorkingDir != "" && n.Git == "" {
			wd := n.PathBase(d.Dir)
			if fi, err := os.Stat(wd); err != nil || !fi.IsDir() {
				out = append(out, fmt.Sprintf("node %q: working directory %s is not a directory on this machine", n.ID, wd))
				continue
			}
		}
		if n.Git != "" || n.IsDynamic() || n.IsShell() || n.Path == "" {
			continue
		}
		p := n.ResolvedPath(d.Dir)
		if dataflow.IsBareName(n.Path) {
			// As the daemon does: the file beside the descriptor if there is one, else PATH.
			base := n.PathBase(d.Dir)
			beside := filepath.Join(base, n.Path)
			if fi, err := os.Stat(beside); base == "" || err != nil || !fi.Mode().IsRegular() {
				if _, err := exec.LookPath(n.Path); err != nil {
					out = append(out, fmt.Sprintf("node %q: path %s is neither in %s nor in $PATH on this machine",
						n.ID, n.Path, orDash(base)))
				}
				continue
			}
			p = beside
		}
		var problem string
		switch fi, err := os.Stat(p); {
		case err != nil:
			problem = "does not exist"
		case fi.IsDir():
			problem = "is a directory"
		case fi.Mode().Perm()&0o111 == 0:
			problem = "is not executable"
		default:
			continue
		}
		out = append(out, fmt.Sprintf("node %q: path %s %s on this machine", n.ID, p, problem))
	}
	return out
}

func printPathWarnings(w io.Writer, d *dataflow.Descriptor) {
	for _, msg := range pathWarnings(d) {
		fmt.Fprintf(w, "warning: %s\n", msg)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
