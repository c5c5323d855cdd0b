// Command exit-code is a node that exits with the code in EXIT_CODE (default 1) after
// EXIT_AFTER (a Go duration, default at once), for testing "failed (exit N)" outcomes.
// Started by a daemon, it registers first, so the failure comes from a connected node.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/doractl/doractl/node"
	"github.com/doractl/doractl/proto"
)

func main() {
	code := 1
	if s := os.Getenv("EXIT_CODE"); s != "" {
		c, err := strconv.Atoi(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "exit-code: EXIT_CODE=%q is not a number\n", s)
			os.Exit(2)
		}
		code = c
	}
	var after time.Duration
	if s := os.Getenv("EXIT_AFTER"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "exit-code: EXIT_AFTER=%q is not a duration\n", s)
			os.Exit(2)
		}
		after = d
	}
	if os.Getenv(proto.EnvNodeID) != "" {
		n, err := node.Init(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, "exit-code: init:", err)
		} else {
			defer n.Close()
		}
	}
	time.Sleep(after)
	fmt.Printf("exiting with code %d\n", code)
	os.Exit(code)
}
