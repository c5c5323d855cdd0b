package daemon

import (
	"errors"
	"net"
	"time"

	"github.com/doractl/doractl/proto"
)

// controlIdleTimeout closes control-listener links that carry nothing.
const controlIdleTimeout = 30 * time.Second

// serveControl accepts links on the daemon's own listener. The coordinator connects to tell
// a dead daemon (refused) from a slow one, and may ping; peer daemons forward their nodes'
// outputs here (daemonlink.go).
func (d *Daemon) serveControl(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || d.bg.Err() != nil {
				return
			}
			d.log.Warn("accept on control listener", "error", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-d.bg.Done():
				return
			}
			continue
		}
		pc := &peerConn{d: d, ready: make(chan struct{})}
		conn := proto.NewConn(nc, proto.Options{
			IdleTimeout: controlIdleTimeout,
			OnRequest:   pc.onRequest,
			OnEvent:     pc.onEvent,
			Logger:      d.log.Named("control"),
		})
		pc.conn = conn
		close(pc.ready)
		go func() {
			select {
			case <-conn.Done():
			case <-d.bg.Done():
				_ = conn.Close()
			}
		}()
	}
}

// advertised turns a bound address into one others can dial: an unspecified host becomes
// advertise (or 127.0.0.1).
func advertised(addr net.Addr, advertise string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = advertise
		if host == "" {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}

// routeTo is the local IP address the kernel would use to reach target (host:port), or ""
// when it cannot tell. A UDP "connection" only picks a route: nothing is sent.
func routeTo(target string) string {
	c, err := net.Dial("udp", target)
	if err != nil {
		return ""
	}
	defer c.Close()
	ua, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || ua.IP.IsUnspecified() {
		return ""
	}
	return ua.IP.String()
}

// unspecifiedIP reports whether host ("", "0.0.0.0", "::") means every interface.
func unspecifiedIP(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

// unspecifiedHost reports whether a bound address listens on every interface.
func unspecifiedHost(addr net.Addr) bool {
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || ip.IsUnspecified()
}
