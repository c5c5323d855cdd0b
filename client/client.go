package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/doractl/doractl/proto"
)

// EnvAddr names the environment variable that overrides the default coordinator address.
const EnvAddr = "DORA_COORDINATOR_ADDR"

const (
	// defaultTimeout bounds a call whose context has no deadline.
	defaultTimeout = 30 * time.Second
	// dialTimeout bounds the connect to the coordinator.
	dialTimeout = 5 * time.Second
	// stopSlack is how far past the coordinator's stop deadline the client gives up.
	stopSlack = 5 * time.Second
	// maxErrorBody bounds the error body read.
	maxErrorBody = 64 << 10
)

// DefaultAddr is $DORA_COORDINATOR_ADDR, else 127.0.0.1:6012.
func DefaultAddr() string {
	if a := strings.TrimSpace(os.Getenv(EnvAddr)); a != "" {
		return a
	}
	return fmt.Sprintf("127.0.0.1:%d", proto.DefaultControlPort)
}

// Client calls one coordinator's control API.
type Client struct {
	addr  string // host:port, for messages
	base  string // scheme://host:port
	hc    *http.Client
	token string // proto.APIToken of the cluster key ("" = none)
}

// WithKey makes every request prove the cluster key, as a coordinator with a
// --cluster-key requires. A nil key is no key. It returns c.
func (c *Client) WithKey(key []byte) *Client {
	c.token = proto.APIToken(key)
	return c
}

// New returns a client of the coordinator at addr ("host:port" or "http://host:port";
// "" = DefaultAddr).
func New(addr string) *Client {
	if addr == "" {
		addr = DefaultAddr()
	}
	base := strings.TrimRight(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	shown := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		shown = u.Host
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	return &Client{addr: shown, base: base, hc: &http.Client{Transport: tr}}
}

// checkRef refuses an empty name, which would make another URL.
func checkRef(what, ref string) error {
	if strings.TrimSpace(ref) == "" {
		return fmt.Errorf("no %s given: its name is empty", what)
	}
	return nil
}

// Addr is the coordinator's address as host:port.
func (c *Client) Addr() string { return c.addr }

// Health answers whether the coordinator is up.
func (c *Client) Health(ctx context.Context) (*proto.Health, error) {
	var h proto.Health
	if err := c.call(ctx, http.MethodGet, "/health", nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Members lists the ring members with the coordinator's verdicts, coordinator first.
func (c *Client) Members(ctx context.Context) ([]proto.Member, error) {
	var ms []proto.Member
	if err := c.call(ctx, http.MethodGet, "/members", nil, &ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// Start submits a dataflow; it answers once every daemon acknowledged its nodes.
func (c *Client) Start(ctx context.Context, req proto.APIStartRequest) (*proto.APIStartReply, error) {
	var rep proto.APIStartReply
	if err := c.call(ctx, http.MethodPost, "/dataflows", req, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// List returns every dataflow the coordinator knows, oldest first.
func (c *Client) List(ctx context.Context) ([]proto.Dataflow, error) {
	var ds []proto.Dataflow
	if err := c.call(ctx, http.MethodGet, "/dataflows", nil, &ds); err != nil {
		return nil, err
	}
	return ds, nil
}

// Get returns one dataflow by id or name.
func (c *Client) Get(ctx context.Context, ref string) (*proto.Dataflow, error) {
	var d proto.Dataflow
	if err := checkRef("dataflow", ref); err != nil {
		return nil, err
	}
	if err := c.call(ctx, http.MethodGet, "/dataflows/"+url.PathEscape(ref), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Stop stops a dataflow and returns what the coordinator knows when every node has an
// outcome or its deadline passed. The call gives up StopTimeout(req)+5s after it starts.
func (c *Client) Stop(ctx context.Context, ref string, req proto.APIStopRequest) (*proto.APIStopReply, error) {
	ctx, cancel := context.WithTimeout(ctx, StopTimeout(req)+stopSlack)
	defer cancel()
	var rep proto.APIStopReply
	if err := checkRef("dataflow", ref); err != nil {
		return nil, err
	}
	if err := c.call(ctx, http.MethodPost, "/dataflows/"+url.PathEscape(ref)+"/stop", req, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// StopTimeout is the coordinator's deadline for a stop request: its Timeout, else
// grace + half the grace + 10s (grace defaults to 10s).
func StopTimeout(req proto.APIStopRequest) time.Duration {
	if t, err := time.ParseDuration(req.Timeout); err == nil && t > 0 {
		return t
	}
	grace := 10 * time.Second
	if g, err := time.ParseDuration(req.Grace); err == nil && g >= 0 {
		grace = g
	}
	return grace + grace/2 + 10*time.Second
}

// Destroy stops every dataflow, every daemon and the coordinator.
func (c *Client) Destroy(ctx context.Context, req proto.APIDestroyRequest) (*proto.APIDestroyReply, error) {
	// Stops run in parallel, then the daemons get up to 5 s to acknowledge.
	ctx, cancel := context.WithTimeout(ctx, StopTimeout(proto.APIStopRequest{Grace: req.Grace})+5*time.Second+stopSlack)
	defer cancel()
	var rep proto.APIDestroyReply
	if err := c.call(ctx, http.MethodPost, "/destroy", req, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Logs copies a node's log to w: what there is (follow false), or until the node has
// ended or ctx ends (follow true). tail > 0 starts that many lines before the end.
func (c *Client) Logs(ctx context.Context, ref, node string, tail int, follow bool, w io.Writer) error {
	q := url.Values{}
	if tail != 0 { // a negative tail is refused by the coordinator, naming the value
		q.Set("tail", fmt.Sprint(tail))
	}
	if follow {
		q.Set("follow", "true")
	}
	if err := checkRef("dataflow", ref); err != nil {
		return err
	}
	if err := checkRef("node", node); err != nil {
		return err
	}
	path := "/dataflows/" + url.PathEscape(ref) + "/logs/" + url.PathEscape(node)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	last := &lastLine{w: w}
	if _, err := io.Copy(last, resp.Body); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("logs of %s/%s: %w", ref, node, ctx.Err())
		}
		return fmt.Errorf("logs of %s/%s from %s: %w", ref, node, c.addr, err)
	}
	if why, ok := last.endMarker(); ok {
		return &LogsEndedError{Dataflow: ref, Node: node, Reason: why}
	}
	return nil
}

// lastLine passes writes through and keeps the last bytes written, to find the line
// the coordinator ends a log stream with when the node's daemon is gone.
type lastLine struct {
	w    io.Writer
	tail []byte
}

const lastLineKeep = 4 << 10

func (l *lastLine) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	l.tail = append(l.tail, p[:n]...)
	if len(l.tail) > lastLineKeep {
		l.tail = append(l.tail[:0], l.tail[len(l.tail)-lastLineKeep:]...)
	}
	return n, err
}

// endMarker returns the reason of the end line (`daemon "D" confirmed dead ...`), if
// the stream ended with one.
func (l *lastLine) endMarker() (string, bool) {
	text := strings.TrimSuffix(string(l.tail), "\n")
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[i+1:]
	}
	rest, ok := strings.CutPrefix(text, proto.LogsEndMarker)
	if !ok || !strings.HasSuffix(rest, " --") {
		return "", false
	}
	return strings.TrimSuffix(rest, " --"), true
}

// call sends a JSON request and decodes the JSON reply into out, within the context's
// deadline or defaultTimeout.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return c.timeoutError(ctx)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			return errors.New(c.notCoordinator(resp.StatusCode))
		}
		return fmt.Errorf("bad reply from coordinator at %s to %s %s: %w", c.addr, method, path, err)
	}
	return nil
}

// send performs a request and returns a 2xx response; other statuses become *APIError.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+proto.APIPrefix+path, body)
	if err != nil {
		return nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", proto.APIAuthScheme+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, c.apiError(resp)
	}
	return resp, nil
}

// transportError classifies a failed round trip: not reachable, or no answer in time.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return c.timeoutError(ctx)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return &UnreachableError{Addr: c.addr, Err: err}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w at %s before it answered (%v): it stopped or restarted; what it recorded before still holds (see doractl list)", ErrConnectionLost, c.addr, err)
	}
	return fmt.Errorf("coordinator at %s: %w", c.addr, err)
}

func (c *Client) timeoutError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("coordinator at %s did not answer in time: %w", c.addr, ctx.Err())
	}
	return fmt.Errorf("request to coordinator at %s: %w", c.addr, ctx.Err())
}

// apiError reads an error reply. A body that is not a JSON API error (an HTML page,
// a plain-text 404) is not shown: the address is likely another HTTP server.
func (c *Client) apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var ae proto.APIError
	if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
		return &APIError{Status: resp.StatusCode, Message: ae.Error}
	}
	return &APIError{Status: resp.StatusCode, Message: c.notCoordinator(resp.StatusCode)}
}

func (c *Client) notCoordinator(status int) string {
	return fmt.Sprintf("%s does not look like a doractl coordinator (HTTP %d)", c.addr, status)
}
