// Command rust-node is the source of the rust-dataflow example: on every tick of its timer
// input it sends a random uint64 (8 bytes, little endian) on its output "random".
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"

	"github.com/doractl/doractl/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rust-node:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	n, err := node.Init(ctx)
	if err != nil {
		return err
	}
	defer n.Close()
	ticks := 0
	for {
		select {
		case <-ctx.Done():
			fmt.Println("interrupted, exiting")
			return nil
		case ev, ok := <-n.Events():
			if !ok {
				return nil // the daemon closed the link
			}
			switch ev.Type {
			case node.EventInput:
				if ev.ID != "tick" {
					fmt.Fprintf(os.Stderr, "ignoring unexpected input %q\n", ev.ID)
					continue
				}
				ticks++
				v := rand.Uint64()
				var buf [8]byte
				binary.LittleEndian.PutUint64(buf[:], v)
				fmt.Printf("tick %d, sending %#x\n", ticks, v)
				if err := n.Send("random", buf[:]); err != nil {
					return err
				}
			case node.EventStop:
				fmt.Println("received stop")
				return nil
			case node.EventAllInputsClosed:
				fmt.Println("all inputs closed, exiting")
				return nil
			}
		}
	}
}
