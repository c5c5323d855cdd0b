// Command rust-sink-dynamic is the sink of dataflow_dynamic.yml: started by hand, it
// connects to the local daemon as the dynamic node "rust-sink-dynamic" and prints every
// message it receives.
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
	n, err := node.InitDynamic(ctx, "rust-sink-dynamic")
	if err != nil {
		fmt.Fprintln(os.Stderr, "rust-sink-dynamic:", err)
		os.Exit(1)
	}
	defer n.Close()
	fmt.Printf("connected as %s of dataflow %s\n", n.ID(), n.DataflowID())
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
