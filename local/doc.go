// Package local runs a whole dataflow in one process, for development without a cluster
// (doractl run): a coordinator.Server with no listeners and no gossip, and one
// daemon.Daemon linked to it through net.Pipe. Spawning, routing, stopping and outcomes
// are the cluster's code; only the dynamic-node listener is opened (loopback), so dynamic
// nodes connect exactly as they do to a cluster daemon.
//
// Nodes are spawned with a parent-death signal: if the process is killed, even with
// SIGKILL, the kernel kills the nodes it spawned (not their own children).
package local
