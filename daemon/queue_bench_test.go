package daemon

import "testing"

func BenchmarkQueuePushPop(b *testing.B) {
	box := newInbox("consumer")
	box.addInput("in", 1024)
	m := message{data: make([]byte, 8)}
	b.ReportAllocs()
	for b.Loop() {
		if !box.push("in", m) {
			b.Fatal("push refused")
		}
		if _, ok := box.take(); !ok {
			b.Fatal("nothing to take")
		}
	}
}
