// Command ignore-stop is a node that will not stop: it ignores the Stop event, SIGTERM and
// SIGINT and keeps running until it is killed. It is for testing "killed after grace".
//
// With STUBBORN_SPAWN_CHILD=1 it also starts a copy of itself in its process group (just
// as stubborn), and prints "child pid N", so that tests can check the whole group is
// killed.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/doractl/doractl/node"
	"github.com/doractl/doractl/proto"
)

func main() {
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if os.Getenv("STUBBORN_CHILD") == "1" {
		sleepForever()
	}
	if os.Getenv("STUBBORN_SPAWN_CHILD") == "1" {
		if err := spawnChild(); err != nil {
			fmt.Fprintln(os.Stderr, "ignore-stop: child:", err)
		}
	}
	if os.Getenv(proto.EnvNodeID) != "" {
		n, err := node.Init(context.Background())
		if err != nil {
			fmt.Fprintln(os.Stderr, "ignore-stop: init:", err)
		} else {
			go func() {
				for ev := range n.Events() {
					if ev.Type == node.EventStop {
						fmt.Println("received stop, ignoring it")
					}
				}
				fmt.Println("daemon link closed, still running")
			}()
		}
	}
	fmt.Println("stubborn node running, ignoring stop and SIGTERM")
	sleepForever()
}

func spawnChild() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "STUBBORN_CHILD=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Printf("child pid %d\n", cmd.Process.Pid)
	return nil
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
