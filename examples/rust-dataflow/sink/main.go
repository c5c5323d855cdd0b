// Command rust-sink prints every message it receives on its input "message".
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/doractl/doractl/node"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	n, err := node.Init(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rust-sink:", err)
		os.Exit(1)
	}
	defer n.Close()
	sink(ctx, n)
}

// sink prints the messages until it is stopped or its inputs close.
func sink(ctx context.Context, n *node.Node) {
	for {
		select {
		case <-ctx.Done():
			fmt.Println("interrupted, exiting")
			return
		case ev, ok := <-n.Events():
			if !ok {
				return
			}
			switch ev.Type {
			case node.EventInput:
				fmt.Printf("sink received message: %s\n", ev.Data)
			case node.EventInputClosed:
				fmt.Printf("input %q was closed\n", ev.ID)
			case node.EventAllInputsClosed:
				fmt.Println("all inputs closed, exiting")
				return
			case node.EventStop:
				fmt.Println("received stop")
				return
			}
		}
	}
}
