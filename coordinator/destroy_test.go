package coordinator

import (
	"context"
	"github.com/doractl/doractl/internal/testutil"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/doractl/doractl/proto"
)

func TestDestroy(t *testing.T) {
	ts := startServer(t, nil)
	f := newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a"})
	startDF(t, ts, "one", twoNodes)
	startDF(t, ts, "two", twoNodes)
	waitStatus(t, ts, "two", proto.DataflowRunning, proto.NodeRunning)

	rep, err := ts.cl.Destroy(context.Background(), proto.APIDestroyRequest{Grace: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Dataflows) != 2 || len(rep.Daemons) != 1 || rep.Daemons[0] != "daemon-a" {
		t.Fatalf("destroy reply %+v", rep)
	}
	for _, d := range rep.Dataflows {
		if d.Status != proto.DataflowFinished || d.Error != "" {
			t.Errorf("dataflow %s: %s %q", d.Name, d.Status, d.Error)
		}
	}
	if f.destroyed() != 1 {
		t.Errorf("daemon got %d destroy requests", f.destroyed())
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Run after destroy: %v", err)
		}
		ts.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after destroy")
	}
}

func TestMetricsAndMembers(t *testing.T) {
	ts := startServer(t, nil)
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-b"})
	newFakeDaemon(t, ts.srv.DaemonAddr(), fakeOpts{name: "daemon-a", machine: "coordinator-host"})
	startDF(t, ts, "demo", twoNodes)
	stopDF(t, ts, "demo", proto.APIStopRequest{})

	ms, err := ts.cl.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ms {
		names = append(names, m.Name+"="+m.Status)
	}
	if strings.Join(names, " ") != "coordinator=alive daemon-a=alive daemon-b=alive" {
		t.Errorf("members %v", names)
	}

	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get("http://" + ts.srv.ControlAddr() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		text := string(b)
		for _, want := range []string{
			`doractl_coordinator_members{status="alive"} 3`,
			`doractl_coordinator_dataflows{status="finished"} 1`,
			`doractl_coordinator_stop_duration_seconds_count{result="clean"} 1`,
			`doractl_coordinator_pending_operations 0`,
			`doractl_coordinator_daemon_link_rtt_seconds{daemon="daemon-a"}`,
		} {
			if !strings.Contains(text, want) {
				return errString("metrics lack " + want)
			}
		}
		return nil
	})
}
