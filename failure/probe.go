package failure

import (
	"context"
	"errors"
	"net"
	"syscall"
)

// dial opens and closes a TCP connection to addr within DialTimeout. A nil
// error means something accepts connections there; see isRefused.
func (d *Detector) dial(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout)
	defer cancel()
	if d.cfg.DialPort != nil {
		return d.cfg.DialPort(ctx, addr)
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// isRefused reports whether err is a refused connection: nothing listens on
// the port, so the process that owned it is gone.
func isRefused(err error) bool {
	return err != nil && errors.Is(err, syscall.ECONNREFUSED)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
