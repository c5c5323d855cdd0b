package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/doractl/doractl/proto"
)

func TestErrorLines(t *testing.T) {
	for in, want := range map[string]string{
		"no dataflow \"x\"": "Error: no dataflow \"x\"",
		"unknown command \"strat\" for \"doractl\"\n\nDid you mean this?\n\tstart\n": "Error: unknown command \"strat\" for \"doractl\"\n  Did you mean this?\n  start",
		"a.yml:1:1: one\na.yml:2:1: two":                                             "Error: a.yml:1:1: one\n  a.yml:2:1: two",
		"\n":                                                                         "Error: \n",
	} {
		if got := errorLines(errors.New(in)); got != want {
			t.Errorf("errorLines(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestArgumentErrorsShowUsage(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"logs", "demo"})
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), "accepts 2 arg(s), received 1\nusage: doractl logs DATAFLOW NODE [flags] (see 'doractl logs --help')") {
		t.Fatalf("error %v", err)
	}
}

func TestNodeOutcomesShowUnconfirmed(t *testing.T) {
	var b strings.Builder
	printNodeOutcomes(&b, []proto.NodeInfo{
		{ID: "status", Machine: "robot-b", Daemon: "daemon-robot-b", Status: proto.NodeRunning},
		{ID: "sink", Machine: "robot-a", Daemon: "daemon-robot-a", Status: proto.NodeStopped, Outcome: "stopped"},
		{ID: "source", Machine: "robot-a", Daemon: "daemon-robot-a", Status: proto.NodeRunning},
	}, []string{"daemon-robot-b"})
	out := b.String()
	for _, want := range []string{"status  robot-b  daemon-robot-b  unconfirmed (last known: running)", "sink    robot-a  daemon-robot-a  stopped",
		"source  robot-a  daemon-robot-a  running"} {
		if !strings.Contains(out, want) {
			t.Errorf("outcomes\n%s\nlack %q", out, want)
		}
	}
}
