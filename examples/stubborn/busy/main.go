// Command busy is a node that keeps a core busy: BUSY_THREADS goroutines (default 1) spin
// until the node gets the Stop event (or, started by hand, forever). It is for testing that
// a machine with every core busy keeps its daemon alive in the ring.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/doractl/doractl/node"
	"github.com/doractl/doractl/proto"
)

func main() {
	threads := 1
	if s := os.Getenv("BUSY_THREADS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "busy: BUSY_THREADS=%q is not a positive number\n", s)
			os.Exit(2)
		}
		threads = n
	}
	var stop atomic.Bool
	for range threads {
		go spin(&stop)
	}
	fmt.Printf("busy node spinning on %d thread(s)\n", threads)
	if os.Getenv(proto.EnvNodeID) == "" {
		select {}
	}
	n, err := node.Init(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "busy: init:", err)
		os.Exit(1)
	}
	defer n.Close()
	for ev := range n.Events() {
		if ev.Type == node.EventStop {
			break
		}
	}
	stop.Store(true)
	fmt.Println("busy node stopped")
}

// spin burns CPU until stop is set.
func spin(stop *atomic.Bool) {
	x := uint64(1)
	for !stop.Load() {
		for range 1 << 16 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		runtime.KeepAlive(x)
	}
}
