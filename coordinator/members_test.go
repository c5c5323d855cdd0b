package coordinator

import (
	"context"
	"errors"
	"fmt"
	"github.com/doractl/doractl/internal/testutil"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

func memberStatus(t *testing.T, ts *testServer, name string) (proto.Member, bool) {
	t.Helper()
	ms, err := ts.cl.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m, true
		}
	}
	return proto.Member{}, false
}

// A daemon known from the store that does not come back is dead: at once when its port
// refuses, after RestoredTimeout when the port still answers; never suspect forever,
// whether or not it ran nodes.
func TestRestoredDaemonsBecomeDead(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *Config) { c.DataDir = dir; c.RestoredTimeout = 700 * time.Millisecond }
	ts1 := startServer(t, withDir)
	gone := newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-gone"})
	mute := newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-mute"})
	ts1.shutdown(t)
	gone.crash()
	mute.disconnect() // its port still accepts connections

	ts2 := startServer(t, withDir)
	testutil.CheckFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		m, _ := memberStatus(t, ts2, "daemon-gone")
		if m.Status != proto.MemberDead {
			return fmt.Errorf("daemon-gone %s (%s)", m.Status, m.Reason)
		}
		return nil
	})
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		m, _ := memberStatus(t, ts2, "daemon-mute")
		if m.Status != proto.MemberDead || !strings.Contains(m.Reason, "not re-registered within 700ms") {
			return fmt.Errorf("daemon-mute %s (%s)", m.Status, m.Reason)
		}
		return nil
	})
	// It may still come back.
	mute.register(ts2.srv.DaemonAddr(), nil)
	testutil.CheckFor(t, 3*time.Second, 20*time.Millisecond, func() error {
		if m, _ := memberStatus(t, ts2, "daemon-mute"); m.Status != proto.MemberAlive {
			return fmt.Errorf("daemon-mute %s (%s)", m.Status, m.Reason)
		}
		return nil
	})
}

// A restored daemon that registered with the new coordinator and then lost its link
// (the coordinator paused, say) is not declared dead for not having come back: it did.
func TestRestoredDaemonBackThenDisconnectedNotDeclared(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *Config) { c.DataDir = dir; c.RestoredTimeout = time.Hour }
	ts1 := startServer(t, withDir)
	back := newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-back"})
	mute := newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-mute"})
	ts1.shutdown(t)
	back.disconnect()
	mute.disconnect() // port open, never registers again

	ts2 := startServer(t, withDir)
	back.register(ts2.srv.DaemonAddr(), nil)
	back.disconnect() // port still open: a live process whose link dropped
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if ts2.srv.session("daemon-back") != nil {
			return errors.New("daemon-back still connected")
		}
		return nil
	})
	ts2.srv.declareNotReturned([]string{"daemon-back", "daemon-mute"}) // what the timer does
	if m, _ := memberStatus(t, ts2, "daemon-mute"); m.Status != proto.MemberDead {
		t.Errorf("daemon-mute %s (%s), want dead", m.Status, m.Reason)
	}
	if m, _ := memberStatus(t, ts2, "daemon-back"); m.Status == proto.MemberDead {
		t.Errorf("daemon-back declared dead although it registered: %s", m.Reason)
	}
}

// After a destroy, the next coordinator on the same data dir does not list the
// destroyed cluster's daemons.
func TestDestroyForgetsDaemons(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *Config) { c.DataDir = dir }
	ts1 := startServer(t, withDir)
	newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	if _, err := ts1.cl.Destroy(context.Background(), proto.APIDestroyRequest{Grace: "1s"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ts1.done:
		ts1.done <- err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after destroy")
	}
	ts2 := startServer(t, withDir)
	if m, ok := memberStatus(t, ts2, "daemon-a"); ok {
		t.Errorf("destroyed daemon still listed: %+v", m)
	}
}

// A leave that arrives after destroy forgot the daemons (from one it did not tell: not
// connected then) is not stored for the next cluster.
func TestLateLeaveAfterDestroyNotStored(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *Config) { c.DataDir = dir }
	ts1 := startServer(t, withDir)
	away := newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-b"})
	away.disconnect()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if ts1.srv.session("daemon-b") != nil {
			return errors.New("daemon-b still connected")
		}
		return nil
	})
	ts1.srv.forgetDaemons(nil)
	ts1.srv.markLeft("daemon-b", time.Now())
	ts1.shutdown(t)
	ts2 := startServer(t, withDir)
	if m, ok := memberStatus(t, ts2, "daemon-b"); ok {
		t.Errorf("a daemon of the destroyed cluster is listed: %+v", m)
	}
}

// Daemons recorded as left are listed as left, and forgotten after leftForget.
func TestLeftDaemonsListedThenForgotten(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *Config) { c.DataDir = dir }
	ts1 := startServer(t, withDir)
	newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-recent"})
	newFakeDaemon(t, ts1.srv.DaemonAddr(), fakeOpts{name: "daemon-old"})
	ts1.srv.markLeft("daemon-recent", time.Now().Add(-10*time.Minute))
	ts1.srv.markLeft("daemon-old", time.Now().Add(-2*leftForget))
	ts1.shutdown(t)

	ts2 := startServer(t, withDir)
	if m, ok := memberStatus(t, ts2, "daemon-recent"); !ok || m.Status != proto.MemberLeft {
		t.Errorf("daemon-recent %+v, want left", m)
	}
	if m, ok := memberStatus(t, ts2, "daemon-old"); ok {
		t.Errorf("daemon-old still listed: %+v", m)
	}
}

// A daemon registering while the coordinator is being destroyed is refused: it would be
// stored for the next cluster.
func TestRegisterRefusedAfterDestroy(t *testing.T) {
	ts := startServer(t, nil)
	ts.srv.forgotten.Store(true)
	f := newUnregisteredFake(t, fakeOpts{name: "daemon-late"})
	if err := f.tryRegister(ts.srv.DaemonAddr(), nil); err == nil || !strings.Contains(err.Error(), "the coordinator is being destroyed") {
		t.Fatalf("registration after destroy: %v", err)
	}
}
