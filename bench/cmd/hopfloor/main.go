// Command hopfloor measures the floor under node -> daemon -> node latency on this
// machine: one 8-byte message from one process to another over a unix socket, paced like
// the latency benchmark (one per millisecond), with no framing, codec or routing at all.
// A message through doractl makes two such hops (node to daemon, daemon to node).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/doractl/doractl/bench/internal/stats"
)

func main() {
	child := flag.String("child", "", "internal: run as the receiving process on this socket")
	n := flag.Int("n", 3000, "messages")
	flag.Parse()
	var err error
	if *child != "" {
		err = receive(*child, *n)
	} else {
		err = send(*n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hopfloor:", err)
		os.Exit(1)
	}
}

// send listens, starts the receiver as a child process and sends it timestamps.
func send(n int) error {
	dir, err := os.MkdirTemp("", "hopfloor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "-child", sock, "-n", fmt.Sprint(n))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start receiver: %w", err)
	}
	c, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer c.Close()
	buf := make([]byte, 8)
	for i := 0; i < n; i++ {
		time.Sleep(time.Millisecond)
		binary.LittleEndian.PutUint64(buf, uint64(time.Now().UnixNano()))
		if _, err := c.Write(buf); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return cmd.Wait()
}

// receive reads the timestamps and prints the one-hop latency distribution.
func receive(sock string, n int) error {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	buf := make([]byte, 8)
	lat := make([]time.Duration, 0, n)
	for len(lat) < n {
		if _, err := io.ReadFull(c, buf); err != nil {
			break
		}
		lat = append(lat, time.Duration(time.Now().UnixNano()-int64(binary.LittleEndian.Uint64(buf))))
	}
	d := stats.NewDist(lat)
	fmt.Printf("| one unix-socket hop between two processes, 8 B, 1 per ms | %d | %s | %s |\n", len(lat), us(d.Pct(50)), us(d.Pct(99)))
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }
