package waitgroup

import (
	"sync"
	"testing"
	"time"
)

func TestWithin(t *testing.T) {
	var wg sync.WaitGroup
	if !Within(&wg, time.Second) {
		t.Fatal("an empty group did not finish")
	}
	wg.Add(1)
	if Within(&wg, 20*time.Millisecond) {
		t.Fatal("a pending group finished")
	}
	release := make(chan struct{})
	go func() {
		<-release
		wg.Done()
	}()
	close(release)
	if !Within(&wg, 5*time.Second) {
		t.Fatal("the group did not finish after Done")
	}
}
