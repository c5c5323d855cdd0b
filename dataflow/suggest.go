package dataflow

import (
	"fmt"
	"slices"
)

// The fields each mapping of a descriptor accepts, for "did you mean" hints. A test
// checks that every name listed parses.
func rootFields() []string {
	return []string{"nodes", "deploy", "_unstable_deploy", "env", "communication", "_unstable_communication",
		"version", "name", "description", "debug", "_unstable_debug", "health_check_interval", "strict_types",
		"exit_when_nodes_finish", "type_rules"}
}

func nodeFields() []string {
	return []string{"id", "name", "description", "path", "build", "git", "rev", "branch", "tag", "send_stdout_as",
		"args", "env", "inputs", "outputs", "deploy", "_unstable_deploy", "restart_policy", "max_restarts",
		"restart_delay", "max_restart_delay", "restart_window", "health_check_timeout", "input_types", "output_types"}
}

func inputFields() []string { return []string{"source", "queue_size", "input_timeout"} }

func deployFields() []string { return []string{"machine", "working_dir", "labels"} }

// fieldHint is the hint for an unknown field outside `deploy`: where it belongs if it is
// a deploy field, else didYouMean.
func fieldHint(name string, known []string) string {
	if slices.Contains(deployFields(), name) {
		return fmt.Sprintf("; %q belongs under `deploy:`", name)
	}
	return didYouMean(name, known)
}

// didYouMean is `; did you mean "x"?` for the known name closest to name, when it is
// close enough to be a typo (at most 2 edits, and fewer than half of name), else "".
func didYouMean(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(name, k); d < bestD && 2*d < len(name) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the Levenshtein distance between a and b, with a transposition of
// two neighbours counting as one edit (restart_polcy, ouputs).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
