// Package cluster is doractl's membership layer: a thin wrapper around a
// hashicorp/memberlist SWIM ring that the coordinator and every daemon join.
//
// The ring gives liveness that is independent of work: gossip runs on its own
// goroutines and the delegates in this package never block or call back into
// memberlist. Member changes are delivered on a buffered channel (Events);
// when that channel overflows events are dropped and counted, and consumers
// resynchronise with Members.
//
// The package knows nothing of dataflows. It carries a small metadata record
// per member (Meta) with the role, machine, control address, boot epoch,
// version, labels and a leave intent, because memberlist itself cannot tell a
// graceful leave from a death to the application (Node.State is always
// StateAlive in callbacks).
//
// FaultTransport is a memberlist.Transport over real loopback sockets that
// injects loss, delay, partitions and stalls, for tests.
package cluster
