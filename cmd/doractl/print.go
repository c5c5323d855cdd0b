package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/doractl/doractl/proto"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

func printMembers(w io.Writer, ms []proto.Member) {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tROLE\tMACHINE\tADDRESS\tSTATUS\tSINCE\tREASON")
	cut := false
	for _, m := range ms {
		reason := truncate(oneLineText(m.Reason), memberReasonWidth)
		cut = cut || reason != oneLineText(m.Reason)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Role, m.Machine, m.Address, m.Status, ago(m.Since), orDash(reason))
	}
	tw.Flush()
	if cut {
		fmt.Fprintln(w, "(reasons cut short; doractl members -o json has them whole)")
	}
}

// memberReasonWidth is how much of a member's reason the table shows: the summary that
// starts every reason, not the details of each check.
const memberReasonWidth = 90

func printDataflows(w io.Writer, dfs []proto.Dataflow) {
	tw := newTable(w)
	fmt.Fprintln(tw, "UUID\tNAME\tSTATUS\tNODES\tMACHINES\tSTARTED\tREASON")
	cut := false
	for _, d := range dfs {
		reason := truncate(oneLineText(d.Reason), 60)
		cut = cut || reason != oneLineText(d.Reason)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Name, d.Status, nodeCounts(d.Nodes), strings.Join(d.Machines, ","), ago(d.StartedAt), orDash(reason))
	}
	tw.Flush()
	if cut {
		fmt.Fprintln(w, "(reasons cut short; doractl list -o json has them whole)")
	}
}

// truncate shortens s to at most n runes, ending it with "..." when cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

// oneLineText joins the lines of s with spaces, so it fits a table cell.
func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// nodeCounts summarises node statuses: "3 running" or "2 stopped, 1 killed".
func nodeCounts(nodes []proto.NodeInfo) string {
	counts := map[string]int{}
	var order []string
	for _, n := range nodes {
		if counts[n.Status] == 0 {
			order = append(order, n.Status)
		}
		counts[n.Status]++
	}
	parts := make([]string, 0, len(order))
	for _, s := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// printNodeOutcomes prints one line per node. A node without an outcome on a daemon
// in unconfirmed (it did not confirm a stop in time) is "unconfirmed", with its last
// known status.
func printNodeOutcomes(w io.Writer, nodes []proto.NodeInfo, unconfirmed []string) {
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tMACHINE\tDAEMON\tOUTCOME")
	for _, n := range nodes {
		out := n.Outcome
		switch {
		case out != "":
		case slices.Contains(unconfirmed, n.Daemon):
			out = "unconfirmed (last known: " + n.Status + ")"
		default:
			out = n.Status
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.ID, n.Machine, n.Daemon, out)
	}
	tw.Flush()
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	default:
		return t.Local().Format("2006-01-02 15:04")
	}
}
