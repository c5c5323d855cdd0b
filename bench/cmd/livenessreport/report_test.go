package main

import "testing"

func TestCommandLine(t *testing.T) {
	cases := []struct {
		command string
		args    []string
		want    string
	}{
		{"", []string{"-phases", "crash", "-out", "/tmp/x.md"}, "`go run ./bench/cmd/livenessreport -phases crash`"},
		{"", []string{"-command=x", "-phases=crash"}, "`go run ./bench/cmd/livenessreport -phases=crash`"},
		{"make bench-liveness", []string{"-loss-duration", "62m", "-command", "make bench-liveness", "-out", "docs/benchmarks.md"},
			"`make bench-liveness` (`go run ./bench/cmd/livenessreport -loss-duration 62m`)"},
		{"go run ./bench/cmd/livenessreport", nil, "`go run ./bench/cmd/livenessreport`"},
	}
	for _, c := range cases {
		r := &report{command: c.command, args: c.args}
		if got := r.commandLine(); got != c.want {
			t.Errorf("commandLine(%q, %q) = %s, want %s", c.command, c.args, got, c.want)
		}
	}
}
