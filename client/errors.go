package client

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrUnreachable matches (with errors.Is) every error of a call that could not reach
// the coordinator at all.
var ErrUnreachable = errors.New("cannot reach coordinator")

// ErrConnectionLost matches (with errors.Is) a call whose connection to the coordinator
// closed before the answer: the coordinator stopped or restarted meanwhile.
var ErrConnectionLost = errors.New("lost the connection to the coordinator")

// UnreachableError is a call that could not connect to the coordinator.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("cannot reach coordinator at %s: connection refused (is it running? try doractl up)", e.Addr)
	}
	return fmt.Sprintf("cannot reach coordinator at %s: %v", e.Addr, e.Err)
}

// Unwrap returns the network error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// APIError is an error answered by the coordinator; its text is the server's.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's error text.
	Message string
}

func (e *APIError) Error() string { return e.Message }

// StatusOf is the HTTP status of an API error, 0 for any other error.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// LogsEndedError is a log stream the coordinator ended before the node's log was
// complete, because the node's daemon was confirmed dead, left or failed the request.
// The coordinator's last line saying so has been copied to the output.
type LogsEndedError struct {
	Dataflow, Node string
	// Reason is the end line's text, naming the daemon: `daemon "D" confirmed dead since ...`.
	Reason string
}

func (e *LogsEndedError) Error() string {
	return fmt.Sprintf("log stream of %s/%s ended: %s", e.Dataflow, e.Node, e.Reason)
}
