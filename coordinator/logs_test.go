package coordinator

import (
	"bytes"
	"context"
	"errors"
	"github.com/doractl/doractl/internal/testutil"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/client"
	"github.com/doractl/doractl/proto"
)

func TestLogs(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	demo := startDF(t, ts, "demo", twoNodes)
	waitStatus(t, ts, "demo", proto.DataflowRunning, proto.NodeRunning) // the fake reports it after the ack
	f.setLog(demo.ID, "sink", "line 1\nline 2\n", false)

	var buf bytes.Buffer
	if err := ts.cl.Logs(ctxT(t, 5*time.Second), "demo", "sink", 0, false, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "line 1\nline 2\n" {
		t.Errorf("logs %q", buf.String())
	}
	buf.Reset()
	if err := ts.cl.Logs(ctxT(t, 5*time.Second), demo.ID, "sink", 1, true, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "line 1\nline 2\n" {
		t.Errorf("followed logs %q", buf.String())
	}

	err := ts.cl.Logs(context.Background(), "demo", "nope", 0, false, &buf)
	if client.StatusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), `no node "nope"`) {
		t.Errorf("unknown node: %v", err)
	}
	err = ts.cl.Logs(context.Background(), "demo", "sink", -3, false, &buf)
	if client.StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), `"-3"`) {
		t.Errorf("negative tail: %v", err)
	}
	err = ts.cl.Logs(context.Background(), "nope", "sink", 0, false, &buf)
	if client.StatusOf(err) != http.StatusNotFound || !strings.Contains(err.Error(), `no dataflow "nope"`) {
		t.Errorf("unknown dataflow: %v", err)
	}

	// Its daemon's link is gone: the error says so, and where the file is.
	f.disconnect()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if ts.srv.session("daemon-a") != nil {
			return errors.New("session still there")
		}
		return nil
	})
	err = ts.cl.Logs(context.Background(), "demo", "sink", 0, false, &buf)
	want := `logs of node "sink" (running) unavailable: daemon "daemon-a" is not connected: not confirmed dead (suspect), control link unreachable; ` +
		"the log file stays on machine daemon-a, in that daemon's state folder under dataflows/" + demo.ID + "/sink.log"
	if client.StatusOf(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), want) {
		t.Errorf("logs without a link: %v\nwant %s", err, want)
	}
}

func TestLogsEndWhenDaemonDies(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	demo := startDF(t, ts, "demo", twoNodes)
	f.setLog(demo.ID, "sink", "hello\n", true)

	var buf testutil.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- ts.cl.Logs(context.Background(), "demo", "sink", 0, true, &buf) }()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(buf.String(), "hello") {
			return errString("nothing streamed yet")
		}
		return nil
	})
	f.crash()
	select {
	case err := <-done:
		var le *client.LogsEndedError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), `daemon "daemon-a" confirmed dead`) {
			t.Fatalf("logs ended by the death: %v, want an error naming the daemon", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("log stream still open 5s after the daemon died")
	}
	if !strings.HasPrefix(buf.String(), "hello\n"+proto.LogsEndMarker+`daemon "daemon-a" confirmed dead`) {
		t.Errorf("stream %q does not end with the death on the line after the last one", buf.String())
	}
	err := ts.cl.Logs(context.Background(), "demo", "sink", 0, false, &testutil.SyncBuffer{})
	if !strings.Contains(err.Error(), `logs of node "sink" (lost) unavailable: daemon "daemon-a" confirmed dead`) ||
		!strings.Contains(err.Error(), "the log file stays on machine daemon-a, in that daemon's state folder under dataflows/"+demo.ID+"/sink.log") {
		t.Errorf("logs after the death: %v", err)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// Without follow the log is read to its end as it was when asked: lines written
// meanwhile do not keep the answer going.
func TestLogsLiveLogWithoutFollow(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	demo := startDF(t, ts, "demo", twoNodes)
	f.setLog(demo.ID, "sink", "a\nb\n", true)
	f.mu.Lock()
	f.logsGrow = "more\n"
	f.mu.Unlock()
	var buf bytes.Buffer
	if err := ts.cl.Logs(ctxT(t, 5*time.Second), "demo", "sink", 0, false, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "a\nb\n" {
		t.Errorf("logs %q, want the log as it was", buf.String())
	}
}
