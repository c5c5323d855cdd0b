package proto

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Kind says what an envelope carries.
type Kind uint8

// Envelope kinds.
const (
	KindRequest Kind = 1 // expects exactly one KindReply with the same ID
	KindReply   Kind = 2 // answers the KindRequest with the same ID
	KindEvent   Kind = 3 // one-way, delivered in order
	KindPing    Kind = 4 // answered by the connection itself, never by a handler
	KindPong    Kind = 5
)

// envelope is the unit on the wire: one per frame.
type envelope struct {
	Kind Kind   `codec:"k"`
	ID   uint64 `codec:"i"`
	Type string `codec:"t"`
	Err  string `codec:"e"`
	Body []byte `codec:"b"`
}

// Body is a msgpack-encoded message body.
type Body []byte

// Decode unmarshals the body into v.
func (b Body) Decode(v any) error { return Decode(b, v) }

// ErrClosed is returned by operations on a closed connection.
var ErrClosed = errors.New("connection closed")

// RemoteError is an error returned by the peer's request handler.
type RemoteError struct {
	Type string
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

// Options configures a Conn. Zero values take the defaults noted on each field.
type Options struct {
	// MaxFrame is the largest frame read or written. Default DefaultMaxFrame.
	MaxFrame int
	// WriteTimeout bounds every write to the socket. Default 10s.
	WriteTimeout time.Duration
	// RequestTimeout applies to Request calls whose context has no deadline. Default 30s.
	RequestTimeout time.Duration
	// KeepAlive, when positive, sends a ping this often so that an idle link still
	// carries traffic. Default 0 (off).
	KeepAlive time.Duration
	// IdleTimeout, when positive, closes the connection when nothing at all has been
	// received for this long: the read deadline of the link. Default 0 (off).
	IdleTimeout time.Duration
	// OnRequest handles a request. It runs on its own goroutine, never on the read loop.
	// Return the reply body (any msgpack-encodable value, or nil) or an error.
	OnRequest func(ctx context.Context, typ string, body Body) (any, error)
	// OnEvent handles a one-way event. It runs on the read loop, in arrival order,
	// and must not block: push to a queue and return.
	OnEvent func(typ string, body Body)
	// OnClose is called once, after the read loop ends, with the reason.
	OnClose func(err error)
	// Logger receives debug and warning logs. Default: a null logger.
	Logger hclog.Logger
}

// Conn multiplexes requests, replies and events over one stream connection.
// Its read loop only decodes frames and hands them on: it never waits on a handler,
// so a busy handler cannot stop pings or replies from flowing.
type Conn struct {
	nc   net.Conn
	opts Options
	log  hclog.Logger

	writeMu sync.Mutex
	wbuf    []byte // frame head and tail buffers, reused under writeMu
	wtail   []byte

	mu      sync.Mutex
	pending map[uint64]chan *envelope
	pings   map[uint64]chan struct{}
	nextID  uint64
	closed  bool
	err     error

	lastRecv atomic.Int64 // unix nanos of the last frame received
	done     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
}

// NewConn wraps nc and starts its read loop (and keepalive, if configured).
func NewConn(nc net.Conn, opts Options) *Conn {
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = DefaultMaxFrame
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{
		nc:      nc,
		opts:    opts,
		log:     opts.Logger,
		pending: make(map[uint64]chan *envelope),
		pings:   make(map[uint64]chan struct{}),
		done:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	c.lastRecv.Store(time.Now().UnixNano())
	go c.readLoop()
	if opts.KeepAlive > 0 {
		go c.keepAlive()
	}
	return c
}

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Done is closed when the connection has closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is the reason the connection closed (nil while open).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// LastReceived is when the last frame of any kind arrived.
func (c *Conn) LastReceived() time.Time { return time.Unix(0, c.lastRecv.Load()) }

// Close closes the connection; pending requests fail with ErrClosed.
func (c *Conn) Close() error {
	c.closeWith(ErrClosed)
	return nil
}

func (c *Conn) closeWith(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.err = err
	pending := c.pending
	c.pending = map[uint64]chan *envelope{}
	c.mu.Unlock()
	c.cancel()
	_ = c.nc.Close()
	for _, ch := range pending {
		close(ch)
	}
}

func (c *Conn) readLoop() {
	var err error
	defer func() {
		c.closeWith(err)
		// Wait for nothing: handlers in flight see ctx cancelled.
		close(c.done)
		if c.opts.OnClose != nil {
			c.opts.OnClose(c.Err())
		}
	}()
	// Small frames arrive several per read; big bodies bypass the buffer.
	br := bufio.NewReaderSize(c.nc, readBufSize)
	for {
		if c.opts.IdleTimeout > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(c.opts.IdleTimeout))
		}
		var frame []byte
		frame, err = ReadFrame(br, c.opts.MaxFrame)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("nothing received from %s for %s: %w", c.nc.RemoteAddr(), c.opts.IdleTimeout, err)
			} else if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%s closed the connection: %w", c.nc.RemoteAddr(), err)
			}
			return
		}
		c.lastRecv.Store(time.Now().UnixNano())
		var env envelope
		if derr := decodeEnvelope(frame, &env); derr != nil {
			err = fmt.Errorf("bad frame from %s: %w", c.nc.RemoteAddr(), derr)
			return
		}
		c.dispatch(&env)
	}
}

func (c *Conn) dispatch(env *envelope) {
	switch env.Kind {
	case KindReply:
		c.mu.Lock()
		ch, ok := c.pending[env.ID]
		delete(c.pending, env.ID)
		c.mu.Unlock()
		if ok {
			ch <- env // buffered 1
		} else {
			c.log.Debug("reply for unknown request", "id", env.ID, "type", env.Type)
		}
	case KindRequest:
		go c.serve(env)
	case KindEvent:
		if c.opts.OnEvent != nil {
			c.opts.OnEvent(env.Type, Body(env.Body))
		}
	case KindPing:
		go func() { _ = c.write(&envelope{Kind: KindPong, ID: env.ID}) }()
	case KindPong:
		c.mu.Lock()
		ch, ok := c.pings[env.ID]
		delete(c.pings, env.ID)
		c.mu.Unlock()
		if ok {
			close(ch)
		}
	default:
		c.log.Warn("unknown frame kind", "kind", env.Kind, "peer", c.nc.RemoteAddr())
	}
}

func (c *Conn) serve(req *envelope) {
	reply := &envelope{Kind: KindReply, ID: req.ID, Type: req.Type}
	body := bodyParts{isNil: true}
	if c.opts.OnRequest == nil {
		reply.Err = fmt.Sprintf("no handler for request %q", req.Type)
	} else {
		out, err := c.callHandler(req)
		if err != nil {
			reply.Err = err.Error()
		} else if out != nil {
			b, eerr := encodeParts(out)
			if eerr != nil {
				reply.Err = eerr.Error()
			} else {
				body = b
			}
		}
	}
	if err := c.writeParts(reply, body); err != nil {
		c.log.Debug("reply not sent", "type", req.Type, "error", err)
	}
}

func (c *Conn) callHandler(req *envelope) (out any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler for %q panicked: %v", req.Type, r)
			c.log.Error("request handler panicked", "type", req.Type, "panic", r)
		}
	}()
	return c.opts.OnRequest(c.ctx, req.Type, Body(req.Body))
}

// write sends an envelope whose body (env.Body) is already encoded.
func (c *Conn) write(env *envelope) error {
	return c.writeParts(env, bodyParts{pre: env.Body, isNil: env.Body == nil})
}

const (
	// readBufSize is the read buffer of a connection.
	readBufSize = 64 << 10
	// joinLimit: bodies with less data than this are copied into one write; bigger data
	// goes to the socket as is, beside the envelope (writev).
	joinLimit = 64 << 10
)

// writeParts sends one frame: env around body (env.Body is ignored).
func (c *Conn) writeParts(env *envelope, body bodyParts) error {
	c.mu.Lock()
	closed, cerr := c.closed, c.err
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("%w: %v", ErrClosed, cerr)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	head, tail := appendFrame(c.wbuf[:0], c.wtail[:0], env, &body)
	defer func() {
		if cap(head) <= joinLimit*2 {
			c.wbuf, c.wtail = head[:0], tail[:0]
		} else {
			c.wbuf, c.wtail = nil, nil // do not keep a big buffer for one big message
		}
	}()
	if size := len(head) - frameHeader + len(body.data) + len(tail); size > c.opts.MaxFrame {
		return &FrameSizeError{Size: size, Max: c.opts.MaxFrame} // the connection is still usable
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	var err error
	if len(body.data) < joinLimit {
		head = append(append(head, body.data...), tail...)
		_, err = c.nc.Write(head)
	} else {
		bufs := net.Buffers{head, body.data, tail}
		_, err = bufs.WriteTo(c.nc)
	}
	if err != nil {
		err = fmt.Errorf("write frame: %w", err)
		c.closeWith(err)
		return err
	}
	return nil
}

func (c *Conn) newID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	return c.nextID
}

// Request sends a request and waits for its reply, decoding it into resp (may be nil).
// If ctx has no deadline, Options.RequestTimeout applies: no request waits forever.
func (c *Conn) Request(ctx context.Context, typ string, req any, resp any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.RequestTimeout)
		defer cancel()
	}
	body, err := encodeParts(req)
	if err != nil {
		return err
	}
	id := c.newID()
	ch := make(chan *envelope, 1)
	c.mu.Lock()
	if c.closed {
		cerr := c.err
		c.mu.Unlock()
		return fmt.Errorf("%s: %w: %v", typ, ErrClosed, cerr)
	}
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	if err := c.writeParts(&envelope{Kind: KindRequest, ID: id, Type: typ}, body); err != nil {
		forget()
		return fmt.Errorf("send %s: %w", typ, err)
	}
	select {
	case env, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: %w: %v", typ, ErrClosed, c.Err())
		}
		if env.Err != "" {
			return &RemoteError{Type: typ, Msg: env.Err}
		}
		if resp != nil && len(env.Body) > 0 {
			return Decode(env.Body, resp)
		}
		return nil
	case <-ctx.Done():
		forget()
		return fmt.Errorf("%s to %s: %w", typ, c.nc.RemoteAddr(), ctx.Err())
	}
}

// Notify sends a one-way event.
func (c *Conn) Notify(typ string, msg any) error {
	body, err := encodeParts(msg)
	if err != nil {
		return err
	}
	if err := c.writeParts(&envelope{Kind: KindEvent, Type: typ}, body); err != nil {
		return fmt.Errorf("send %s: %w", typ, err)
	}
	return nil
}

// Ping measures the round trip to the peer's read loop, which answers by itself.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	id := c.newID()
	ch := make(chan struct{})
	c.mu.Lock()
	c.pings[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pings, id)
		c.mu.Unlock()
	}()
	start := time.Now()
	if err := c.write(&envelope{Kind: KindPing, ID: id}); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		return time.Since(start), nil
	case <-c.done:
		return 0, fmt.Errorf("ping: %w", ErrClosed)
	case <-ctx.Done():
		return 0, fmt.Errorf("ping %s: %w", c.nc.RemoteAddr(), ctx.Err())
	}
}

func (c *Conn) keepAlive() {
	t := time.NewTicker(c.opts.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.opts.KeepAlive*4)
			_, _ = c.Ping(ctx)
			cancel()
		}
	}
}
