package testbed_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doractl/doractl/deploy/testbed"
)

// The test binary doubles as the probe and server programs run inside the
// hosts' namespaces: with helperEnv set, TestMain runs a helper instead of the
// tests, so the tests need nothing beyond ip, nft and tc.
const helperEnv = "TESTBED_TEST_HELPER"

const port = "7070"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		if err := helper(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper runs one of:
//
//	serve PORT                 TCP sink and UDP printer; prints "ready"
//	dial ADDR N TIMEOUT        N TCP connects; prints "ok K fail M"
//	udpsend ADDR N TAG         N datagrams "TAG i"
//	tcpsend ADDR BYTES         sends BYTES, waits for the sink to close; prints "ms T"
func helper(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no mode")
	}
	switch args[0] {
	case "mkbed":
		// A run that makes a bed, starts a process in it and dies without
		// closing it.
		b, err := testbed.New(context.Background(), testbed.Config{Name: args[1], Hosts: 1, LogDir: args[2]})
		if err != nil {
			return err
		}
		_, err = b.Hosts()[0].Start(context.Background(), "sleep", "300")
		return err
	case "serve":
		ln, err := net.Listen("tcp", ":"+args[1])
		if err != nil {
			return err
		}
		pc, err := net.ListenPacket("udp", ":"+args[1])
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					_, _ = io.Copy(io.Discard, c)
					c.Close()
				}()
			}
		}()
		fmt.Println("ready")
		buf := make([]byte, 2048)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return err
			}
			fmt.Printf("udp %s\n", buf[:n])
		}
	case "dial":
		n, _ := strconv.Atoi(args[2])
		timeout, err := time.ParseDuration(args[3])
		if err != nil {
			return err
		}
		ok, fail := 0, 0
		for range n {
			c, err := net.DialTimeout("tcp", args[1], timeout)
			if err != nil {
				fail++
				continue
			}
			ok++
			c.Close()
		}
		fmt.Printf("ok %d fail %d\n", ok, fail)
		return nil
	case "udpsend":
		n, _ := strconv.Atoi(args[2])
		c, err := net.Dial("udp", args[1])
		if err != nil {
			return err
		}
		defer c.Close()
		for i := range n {
			// Errors (ECONNREFUSED from an earlier ICMP) do not matter: the
			// receiver counts.
			_, _ = fmt.Fprintf(c, "%s %d", args[3], i)
			time.Sleep(time.Millisecond)
		}
		return nil
	case "tcpsend":
		size, _ := strconv.Atoi(args[2])
		start := time.Now()
		c, err := net.DialTimeout("tcp", args[1], 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(make([]byte, size)); err != nil {
			return err
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, c)
		fmt.Printf("ms %d\n", time.Since(start).Milliseconds())
		return nil
	}
	return fmt.Errorf("unknown mode %q", args[0])
}

func helperCmd(t *testing.T, ctx context.Context, h *testbed.Host, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(ctx, exe, args...)
	// Under -race a binary sleeps 1 s at exit unless told not to.
	cmd.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	return cmd
}

// runHelper runs a helper to completion on h and returns its output.
func runHelper(t *testing.T, h *testbed.Host, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := helperCmd(t, ctx, h, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helper %v on %s: %v\n%s", args, h.Name, err, out)
	}
	return string(out)
}

// serve starts the server helper on h and waits until it listens.
func serve(t *testing.T, h *testbed.Host) *testbed.Process {
	t.Helper()
	p, err := h.StartCmd(helperCmd(t, t.Context(), h, "serve", port))
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, func(s string) bool { return strings.Contains(s, "ready") })
	return p
}

func waitLog(t *testing.T, p *testbed.Process, cond func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := p.Log()
		if err != nil {
			t.Fatal(err)
		}
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("log of pid %d on %s never satisfied the condition:\n%s", p.Pid(), p.Host.Name, s)
		}
		select {
		case <-p.Done():
			t.Fatalf("pid %d on %s exited: %v\n%s", p.Pid(), p.Host.Name, p.Wait(t.Context()), s)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dial makes n TCP connects from src to dst's server; returns the successes.
func dial(t *testing.T, src, dst *testbed.Host, n int, timeout time.Duration) int {
	t.Helper()
	out := runHelper(t, src, "dial", net.JoinHostPort(dst.Addr, port), strconv.Itoa(n), timeout.String())
	var ok, fail int
	if _, err := fmt.Sscanf(out, "ok %d fail %d", &ok, &fail); err != nil {
		t.Fatalf("dial output %q: %v", out, err)
	}
	return ok
}

func reachable(t *testing.T, src, dst *testbed.Host) bool {
	t.Helper()
	return dial(t, src, dst, 1, 500*time.Millisecond) == 1
}

// udpCount counts the datagrams tagged tag that p's server has printed,
// after waiting for stragglers.
func udpCount(t *testing.T, p *testbed.Process, tag string) int {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	s, err := p.Log()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "udp "+tag+" ") {
			n++
		}
	}
	return n
}

func sendUDP(t *testing.T, src, dst *testbed.Host, n int, tag string) {
	t.Helper()
	runHelper(t, src, "udpsend", net.JoinHostPort(dst.Addr, port), strconv.Itoa(n), tag)
}

func newBed(t *testing.T, hosts int) *testbed.Bed {
	t.Helper()
	if err := testbed.Available(); err != nil {
		t.Skip(err)
	}
	b, err := testbed.New(t.Context(), testbed.Config{Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

func heal(t *testing.T, b *testbed.Bed) {
	t.Helper()
	if err := b.Heal(); err != nil {
		t.Fatal(err)
	}
}

func TestFaults(t *testing.T) {
	b := newBed(t, 3)
	hs := b.Hosts()
	if len(hs) != 3 {
		t.Fatalf("hosts: %v", hs)
	}
	h1, h2, h3 := hs[0], hs[1], hs[2]
	servers := map[*testbed.Host]*testbed.Process{}
	for _, h := range hs {
		servers[h] = serve(t, h)
	}

	t.Run("reach", func(t *testing.T) {
		for _, pair := range [][2]*testbed.Host{{h1, h2}, {h2, h3}, {h3, h1}} {
			if !reachable(t, pair[0], pair[1]) {
				t.Errorf("%s cannot reach %s", pair[0], pair[1])
			}
		}
	})

	t.Run("partition", func(t *testing.T) {
		if err := b.Partition([]*testbed.Host{h1}, []*testbed.Host{h2}); err != nil {
			t.Fatal(err)
		}
		if reachable(t, h1, h2) || reachable(t, h2, h1) {
			t.Error("h1 and h2 reach each other across the partition")
		}
		if !reachable(t, h1, h3) || !reachable(t, h2, h3) {
			t.Error("h3 is cut off too")
		}
		heal(t, b)
		if !reachable(t, h1, h2) {
			t.Error("h1 cannot reach h2 after Heal")
		}
	})

	t.Run("oneway", func(t *testing.T) {
		if err := b.OneWay(h1, h2); err != nil {
			t.Fatal(err)
		}
		sendUDP(t, h1, h2, 20, "ow12")
		sendUDP(t, h2, h1, 20, "ow21")
		if n := udpCount(t, servers[h2], "ow12"); n != 0 {
			t.Errorf("h2 got %d datagrams from h1 through a one-way drop", n)
		}
		if n := udpCount(t, servers[h1], "ow21"); n != 20 {
			t.Errorf("h1 got %d of 20 datagrams from h2", n)
		}
		if reachable(t, h1, h2) || reachable(t, h2, h1) {
			t.Error("a TCP handshake between h1 and h2 succeeded through a one-way drop")
		}
		if !reachable(t, h1, h3) {
			t.Error("h1 cannot reach h3")
		}
		heal(t, b)
	})

	t.Run("loss", func(t *testing.T) {
		if err := b.Loss(h1, 50); err != nil {
			t.Fatal(err)
		}
		sendUDP(t, h1, h2, 200, "loss")
		n := udpCount(t, servers[h2], "loss")
		t.Logf("%d of 200 datagrams arrived at 50%% loss", n)
		if n < 50 || n > 150 {
			t.Errorf("%d of 200 datagrams arrived, want 25%% to 75%%", n)
		}
		// A handshake needs the SYN out and the SYN-ACK in: about 1 in 4
		// passes before the first retransmission (1 s).
		ok := dial(t, h1, h2, 10, 150*time.Millisecond)
		t.Logf("%d of 10 TCP connects succeeded at 50%% loss", ok)
		if ok > 8 {
			t.Errorf("%d of 10 TCP connects succeeded: TCP is not affected", ok)
		}
		if !reachable(t, h2, h3) {
			t.Error("loss on h1 affects h2 to h3")
		}
		if err := b.LossAll(100); err != nil {
			t.Fatal(err)
		}
		if reachable(t, h2, h3) {
			t.Error("h2 reaches h3 at 100% loss everywhere")
		}
		if !reachable(t, h2, h2) {
			t.Error("loss drops loopback traffic: h2 cannot reach its own address")
		}
		heal(t, b)
		sendUDP(t, h1, h2, 50, "healed")
		if n := udpCount(t, servers[h2], "healed"); n != 50 {
			t.Errorf("%d of 50 datagrams after Heal", n)
		}
	})

	t.Run("bandwidth", func(t *testing.T) {
		const size = 256 << 10
		if err := b.Bandwidth(h1, "1mbit"); err != nil {
			t.Fatal(err)
		}
		ms := transfer(t, h1, h2, size)
		t.Logf("256 KiB at 1mbit: %d ms", ms)
		// 2 Mbit at 1 Mbit/s, less the 32 KiB bucket: about 1.8 s.
		if ms < 1200 {
			t.Errorf("256 KiB took %d ms at 1mbit, want more than 1.2 s", ms)
		}
		heal(t, b)
		ms = transfer(t, h1, h2, size)
		t.Logf("256 KiB unlimited: %d ms", ms)
		if ms > 1000 {
			t.Errorf("256 KiB took %d ms after Heal", ms)
		}
	})

	t.Run("freeze", func(t *testing.T) {
		p := servers[h3]
		// An untracked process in the namespace is frozen too.
		other := helperCmd(t, t.Context(), h3, "serve", "7071")
		otherOut, err := other.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(otherOut).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("untracked server: %q, %v", line, err)
		}
		otherDone := make(chan error, 1)
		go func() { otherDone <- other.Wait() }()

		if err := b.Freeze(h3); err != nil {
			t.Fatal(err)
		}
		for _, pid := range []int{p.Pid(), other.Process.Pid} {
			if st := state(t, pid); st != 'T' {
				t.Errorf("pid %d state %c after Freeze, want T", pid, st)
			}
		}
		if err := b.Thaw(h3); err != nil {
			t.Fatal(err)
		}
		for _, pid := range []int{p.Pid(), other.Process.Pid} {
			waitState(t, pid, func(st byte) bool { return st != 'T' })
		}

		// Heal thaws.
		if err := b.Freeze(h3); err != nil {
			t.Fatal(err)
		}
		heal(t, b)
		waitState(t, p.Pid(), func(st byte) bool { return st != 'T' })
		if !reachable(t, h1, h3) {
			t.Error("h3's server does not answer after Heal")
		}

		if err := b.Kill(h3); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Done():
		default:
			t.Fatal("tracked process still running after Kill")
		}
		err = p.Wait(t.Context())
		if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("tracked process ended with %v, want SIGKILL", err)
		}
		select {
		case err := <-otherDone:
			if err == nil {
				t.Error("untracked process exited cleanly, want killed")
			}
		case <-time.After(5 * time.Second):
			t.Error("untracked process survived Kill")
		}
		if reachable(t, h1, h3) {
			t.Error("h3's server answers after Kill")
		}
	})

	t.Run("open", func(t *testing.T) {
		o, err := testbed.Open(t.Context(), b.Name(), testbed.Config{})
		if err != nil {
			t.Fatal(err)
		}
		got := o.Hosts()
		if len(got) != len(hs) {
			t.Fatalf("Open found %d hosts, want %d", len(got), len(hs))
		}
		for i := range got {
			if got[i].Name != hs[i].Name || got[i].Addr != hs[i].Addr || got[i].Namespace != hs[i].Namespace {
				t.Errorf("Open host %d = %+v, want %+v", i, got[i], hs[i])
			}
		}
		if o.Subnet() != b.Subnet() {
			t.Errorf("Open subnet %s, want %s", o.Subnet(), b.Subnet())
		}
		// A fault set through the reopened bed applies to the original.
		if err := o.OneWay(o.Host("h1"), o.Host("h2")); err != nil {
			t.Fatal(err)
		}
		if reachable(t, h1, h2) {
			t.Error("a one-way drop set through Open has no effect")
		}
		heal(t, b)
		if !reachable(t, h1, h2) {
			t.Error("Heal did not remove the drop set through Open")
		}
	})
}

func transfer(t *testing.T, src, dst *testbed.Host, size int) int {
	t.Helper()
	out := runHelper(t, src, "tcpsend", net.JoinHostPort(dst.Addr, port), strconv.Itoa(size))
	var ms int
	if _, err := fmt.Sscanf(out, "ms %d", &ms); err != nil {
		t.Fatalf("tcpsend output %q: %v", out, err)
	}
	return ms
}

func state(t *testing.T, pid int) byte {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return s[strings.LastIndexByte(s, ')')+2]
}

func waitState(t *testing.T, pid int, cond func(byte) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := state(t, pid)
		if cond(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d stuck in state %c", pid, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func namespaces(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	var found []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			found = append(found, f[0])
		}
	}
	return found
}

func TestCloseRemovesEverything(t *testing.T) {
	b := newBed(t, 2)
	prefix := b.Name() + "-"
	if got := namespaces(t, prefix); len(got) != 3 {
		t.Fatalf("namespaces %v, want bridge and 2 hosts", got)
	}
	h := b.Hosts()[0]
	p := serve(t, h)
	logDir := b.LogDir()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got := namespaces(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}
	select {
	case <-p.Done():
	default:
		t.Error("process still running after Close")
	}
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v\n%s", err, out)
	}
	if strings.Contains(string(out), b.Name()) {
		t.Errorf("nft table %s left in the root namespace:\n%s", b.Name(), out)
	}
	if _, err := os.Stat(logDir); !os.IsNotExist(err) {
		t.Errorf("log dir %s left: %v", logDir, err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.Heal(); err == nil {
		t.Error("Heal after Close succeeded")
	}
}

func TestCleanupAfterCrash(t *testing.T) {
	if err := testbed.Available(); err != nil {
		t.Skip(err)
	}
	b, err := testbed.New(t.Context(), testbed.Config{Hosts: 2})
	if err != nil {
		t.Fatal(err)
	}
	prefix := b.Name() + "-"
	t.Cleanup(func() { _ = testbed.Cleanup(prefix) })
	// A process left running in a namespace, as after a crash.
	sleeper := helperCmd(t, context.Background(), b.Hosts()[1], "serve", port)
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()

	if _, err := testbed.New(t.Context(), testbed.Config{Name: b.Name(), Hosts: 1}); err == nil {
		t.Fatal("New with the name of a live bed succeeded")
	}
	if got := namespaces(t, prefix); len(got) != 3 {
		t.Fatalf("a refused New touched the live bed: namespaces %v", got)
	}
	if err := testbed.Cleanup(""); err == nil {
		t.Error("Cleanup with an empty prefix succeeded")
	}
	if err := testbed.Cleanup(prefix); err != nil {
		t.Fatal(err)
	}
	if got := namespaces(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after Cleanup: %v", got)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("process in the namespace survived Cleanup")
	}
}

func TestCleanupStale(t *testing.T) {
	if err := testbed.Available(); err != nil {
		t.Skip(err)
	}
	prefix := fmt.Sprintf("ts%03x", rand.IntN(1<<12))
	dead, live, detached := prefix+"a", prefix+"b", prefix+"c"
	t.Cleanup(func() {
		for _, n := range []string{dead, live, detached} {
			_ = testbed.Cleanup(n + "-")
		}
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mk := exec.CommandContext(t.Context(), exe, "mkbed", dead, t.TempDir())
	mk.Env = append(os.Environ(), helperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("mkbed: %v\n%s", err, out)
	}
	// The process it started died with it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "netns", "pids", dead+"-h1").CombinedOutput()
		if err != nil {
			t.Fatalf("ip netns pids: %v\n%s", err, out)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %s outlived the run that started them", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := testbed.New(t.Context(), testbed.Config{Name: live, Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	d, err := testbed.New(t.Context(), testbed.Config{Name: detached, Hosts: 1, Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })

	if err := testbed.CleanupStale(prefix); err != nil {
		t.Fatal(err)
	}
	if got := namespaces(t, dead+"-"); len(got) != 0 {
		t.Errorf("stale bed left: %v", got)
	}
	if got := namespaces(t, live+"-"); len(got) != 2 {
		t.Errorf("live bed touched: %v", got)
	}
	if got := namespaces(t, detached+"-"); len(got) != 2 {
		t.Errorf("detached bed touched: %v", got)
	}
}

func TestNewInterrupted(t *testing.T) {
	if err := testbed.Available(); err != nil {
		t.Skip(err)
	}
	for _, d := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		name := fmt.Sprintf("ti%04x", rand.IntN(1<<16))
		b, err := testbed.New(ctx, testbed.Config{Name: name, Hosts: 4})
		cancel()
		t.Logf("New with a %v deadline: %v", d, err)
		if err == nil {
			// Fast enough to finish: fine, but it must close cleanly too.
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		}
		if got := namespaces(t, name+"-"); len(got) != 0 {
			t.Errorf("New interrupted after %v (err %v) left %v", d, err, got)
			_ = testbed.Cleanup(name + "-")
		}
	}
}

func TestConfig(t *testing.T) {
	for _, cfg := range []testbed.Config{
		{Name: "toolongname"},
		{Name: "Tb"},
		{Name: "tb-1"},
		{Name: "tb", Hosts: -1},
		{Name: "tb", Hosts: 3, Subnet: "10.231.0.0/30"},
		{Name: "tb", Subnet: "fd00::/64"},
		{Name: "tb", Subnet: "nonsense"},
	} {
		if b, err := testbed.New(t.Context(), cfg); err == nil {
			b.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
