// Package daemon runs one machine's share of doractl dataflows.
//
// A daemon dials the coordinator, registers, and then serves its requests: it spawns the
// nodes it is given (each in its own process group, output appended to a log file), routes
// messages between the local nodes through bounded drop-oldest queues, feeds timer inputs,
// stops nodes (Stop event, then SIGTERM after the grace period, then SIGKILL), reports every
// node's status as it changes, and serves node logs.
//
// The daemon never exits because the coordinator is gone: its nodes keep running while it
// reconnects with backoff, and the status changes it could not send are replayed when the
// link is back. It returns from Run only when its context is cancelled (after stopping its
// nodes within the default grace period) or when the coordinator asks it to destroy itself.
//
// Signals are not handled here: the caller cancels Run's context on the first signal and,
// to skip the grace period, cancels Config.ForceCtx (or calls Daemon.Force) on a second one.
package daemon
