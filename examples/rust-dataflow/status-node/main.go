// Command rust-status-node counts the ticks of its timer input and, for every random value
// it receives, sends "operator received random value 0x... after N ticks" on "status".
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/doractl/doractl/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rust-status-node:", err)
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
				return nil
			}
			switch ev.Type {
			case node.EventInput:
				switch ev.ID {
				case "tick":
					ticks++
				case "random":
					if len(ev.Data) != 8 {
						return fmt.Errorf("random input: want 8 bytes, got %d", len(ev.Data))
					}
					v := binary.LittleEndian.Uint64(ev.Data)
					status := fmt.Sprintf("operator received random value %#x after %d ticks", v, ticks)
					if err := n.Send("status", []byte(status)); err != nil {
						return err
					}
				default:
					fmt.Fprintf(os.Stderr, "ignoring unexpected input %q\n", ev.ID)
				}
			case node.EventInputClosed:
				fmt.Printf("input %q was closed\n", ev.ID)
				if ev.ID == "random" {
					fmt.Println("`random` input was closed -> exiting")
					return nil
				}
			case node.EventStop:
				fmt.Println("received stop")
				return nil
			}
		}
	}
}
