package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/doractl/doractl/proto"
)

const (
	// defaultLogMax is the reply size of log requests that give no Max.
	defaultLogMax = 64 << 10
	// maxLogMax caps Max so that a reply always fits in a frame.
	maxLogMax = 8 << 20
	// logPollInterval is how often a long-polling log request looks for new bytes.
	logPollInterval = 50 * time.Millisecond
)

// readLogs serves a LogsRequest: a chunk of a node's log from an offset (or its last Tail
// lines), waiting up to Wait for bytes when there are none yet.
func (d *Daemon) readLogs(ctx context.Context, req *proto.LogsRequest) (*proto.LogsReply, error) {
	path, n, err := d.logTarget(req.DataflowID, req.NodeID)
	if err != nil {
		return nil, err
	}
	limit := req.Max
	if limit <= 0 {
		limit = defaultLogMax
	}
	limit = min(limit, maxLogMax)
	deadline := time.Now().Add(req.Wait)
	start := int64(-1)
	for {
		final, status := true, ""
		if n != nil {
			final, status = nodeFinalStatus(n)
		}
		// The outcome is read before the size: once a node has ended, its log is complete.
		data, size, next, err := readChunk(path, req, &start, limit)
		if err != nil {
			return nil, fmt.Errorf("logs of node %q in dataflow %s: %w", req.NodeID, req.DataflowID, err)
		}
		ended := final && next >= size
		if len(data) > 0 || ended || req.Wait <= 0 || !time.Now().Before(deadline) {
			return &proto.LogsReply{Data: data, Next: next, Ended: ended, Status: status}, nil
		}
		t := time.NewTimer(min(logPollInterval, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return &proto.LogsReply{Next: next, Status: status}, nil
		case <-t.C:
		}
	}
}

// readChunk reads up to limit bytes from *start, resolving *start on the first call.
func readChunk(path string, req *proto.LogsRequest, start *int64, limit int) (data []byte, size, next int64, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if *start < 0 {
			*start = max(req.Offset, 0)
		}
		return nil, 0, *start, nil // not written yet
	}
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, 0, err
	}
	size = st.Size()
	if *start < 0 {
		switch {
		case req.Offset >= 0:
			*start = req.Offset
		case req.Tail > 0:
			if *start, err = tailStart(f, size, req.Tail); err != nil {
				return nil, 0, 0, err
			}
		default:
			*start = size
		}
	}
	pos := min(*start, size)
	if pos >= size {
		return nil, size, pos, nil
	}
	buf := make([]byte, min(int64(limit), size-pos))
	m, err := f.ReadAt(buf, pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, 0, err
	}
	*start = pos + int64(m)
	return buf[:m], size, *start, nil
}

// tailStart returns the offset of the start of the last n lines of a file of the given size.
func tailStart(f *os.File, size int64, n int) (int64, error) {
	const chunk = 4096
	end := size
	lines := 0
	buf := make([]byte, chunk)
	for end > 0 {
		from := max(end-chunk, 0)
		b := buf[:end-from]
		if _, err := f.ReadAt(b, from); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' || from+int64(i) == size-1 {
				continue // a final newline ends the last line, it does not start one
			}
			lines++
			if lines == n {
				return from + int64(i) + 1, nil
			}
		}
		end = from
	}
	return 0, nil
}

// logTarget finds the log of a node: of a known dataflow, or an older one whose file is
// still on disk.
func (d *Daemon) logTarget(dfID, nodeID string) (string, *localNode, error) {
	if df := d.dataflow(dfID); df != nil {
		df.mu.Lock()
		n := df.nodes[nodeID]
		df.mu.Unlock()
		if n == nil {
			return "", nil, fmt.Errorf("logs: dataflow %s has no node %q on daemon %s", dfID, nodeID, d.cfg.Name)
		}
		return n.logPath, n, nil
	}
	p := d.logPath(dfID, nodeID)
	if _, err := os.Stat(p); err == nil {
		return p, nil, nil
	}
	return "", nil, fmt.Errorf("logs: unknown dataflow %q (node %q) on daemon %s", dfID, nodeID, d.cfg.Name)
}

func nodeFinalStatus(n *localNode) (bool, string) {
	n.df.mu.Lock()
	defer n.df.mu.Unlock()
	return n.final, n.status
}
