package daemon

import (
	"fmt"
	"testing"

	"github.com/doractl/doractl/proto"
)

func TestInputQueueDropsOldest(t *testing.T) {
	b := newInbox("c")
	b.addInput("in", 3)
	for i := 1; i <= 5; i++ {
		if !b.push("in", message{data: payload(i)}) {
			t.Fatalf("push %d refused", i)
		}
	}
	queued, dropped := b.stats("in")
	if queued != 3 || dropped != 2 {
		t.Fatalf("queued %d dropped %d, want 3 and 2", queued, dropped)
	}
	for want := 3; want <= 5; want++ {
		d, ok := b.take()
		if !ok {
			t.Fatalf("nothing to take, want m%d", want)
		}
		in := d.msg.(*proto.Input)
		if string(in.Data) != fmt.Sprintf("m%d", want) || in.Dropped != 2 {
			t.Fatalf("got %s dropped %d, want m%d dropped 2", in.Data, in.Dropped, want)
		}
	}
	if _, ok := b.take(); ok {
		t.Fatal("queue should be empty")
	}
}

func TestInboxDefaultQueueSize(t *testing.T) {
	b := newInbox("c")
	b.addInput("in", 0)
	for i := 0; i < 25; i++ {
		b.push("in", message{data: payload(i)})
	}
	if queued, dropped := b.stats("in"); queued != defaultQueueSize || dropped != uint64(25-defaultQueueSize) {
		t.Fatalf("queued %d dropped %d, want %d and %d", queued, dropped, defaultQueueSize, 25-defaultQueueSize)
	}
}

func TestInboxRoundRobin(t *testing.T) {
	b := newInbox("c")
	b.addInput("a", 10)
	b.addInput("b", 10)
	for i := 0; i < 3; i++ {
		b.push("a", message{data: payload(i)})
	}
	b.push("b", message{data: payload(100)})
	var order []string
	for {
		d, ok := b.take()
		if !ok {
			break
		}
		order = append(order, d.msg.(*proto.Input).ID)
	}
	if got := fmt.Sprint(order); got != "[a b a a]" {
		t.Fatalf("order %s, want [a b a a]: inputs take turns", got)
	}
}

func TestInputClosedAfterQueuedData(t *testing.T) {
	b := newInbox("c")
	b.addInput("in", 10)
	b.push("in", message{data: payload(1)})
	b.push("in", message{data: payload(2)})
	b.closeInput("in")
	if b.push("in", message{data: payload(3)}) {
		t.Fatal("push after close accepted")
	}
	var got []string
	for {
		d, ok := b.take()
		if !ok {
			break
		}
		switch m := d.msg.(type) {
		case *proto.Input:
			got = append(got, string(m.Data))
		case *proto.InputClosed:
			got = append(got, "closed:"+m.ID)
		}
	}
	if fmt.Sprint(got) != "[m1 m2 closed:in]" {
		t.Fatalf("got %v, want [m1 m2 closed:in]", got)
	}
}

func TestInboxDropDiscards(t *testing.T) {
	b := newInbox("c")
	b.addInput("in", 10)
	b.push("in", message{data: payload(1)})
	b.drop()
	if b.push("in", message{data: payload(2)}) {
		t.Fatal("push to a gone consumer accepted")
	}
	if _, ok := b.take(); ok {
		t.Fatal("a gone consumer still has events")
	}
}
