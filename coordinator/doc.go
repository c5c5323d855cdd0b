// Package coordinator is doractl's central service: it accepts dataflows over an HTTP+JSON
// control API, places their nodes on the per-machine daemons, starts and stops them, and
// keeps a durable record of every node's outcome.
//
// Daemons dial the coordinator's daemon port and keep one multiplexed proto.Conn open.
// Liveness comes from the gossip ring and the failure detector, never from the work: a stop
// waits for node outcomes up to its deadline, keeps waiting on a merely suspected daemon,
// and resolves the nodes of a confirmed-dead daemon to "lost" at once.
package coordinator
