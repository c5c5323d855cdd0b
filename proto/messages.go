package proto

import (
	"fmt"
	"time"
)

// Default ports, following dora where it has one.
const (
	DefaultControlPort  = 6012  // coordinator HTTP+JSON control API (CLI)
	DefaultDaemonPort   = 53290 // coordinator listener for daemon control links
	DefaultNodePort     = 53291 // daemon's local listener for nodes (dynamic nodes connect here)
	DefaultGossipPort   = 53292 // coordinator's gossip (memberlist) port; daemons pick a free one
	ProtocolVersion     = 1
	EnvDaemonAddr       = "DORACTL_DAEMON_ADDR" // host:port of the daemon's node listener
	EnvDataflowID       = "DORACTL_DATAFLOW_ID"
	EnvNodeID           = "DORACTL_NODE_ID"
	EnvNodeToken        = "DORACTL_NODE_TOKEN"   // proves a spawned node is the one the daemon started
	EnvDaemonEpoch      = "DORACTL_DAEMON_EPOCH" // boot epoch of the daemon that spawned the node
	DynamicNodeProtocol = "dynamic"
	ShellNodePath       = "shell" // a node whose args the daemon runs with sh -c
)

// Message types between coordinator and daemon. The daemon dials the coordinator.
const (
	// daemon -> coordinator requests
	TypeRegister = "register" // RegisterRequest -> RegisterReply
	// coordinator -> daemon requests
	TypeSpawn   = "spawn"   // SpawnRequest -> Ack
	TypeStop    = "stop"    // StopRequest -> Ack (outcomes follow as NodeStatus events)
	TypeLogs    = "logs"    // LogsRequest -> LogsReply
	TypeDestroy = "destroy" // DestroyRequest -> Ack; the daemon stops everything and exits
	TypeKill    = "kill"    // KillRequest -> Ack: fence stale dataflows
	// daemon -> coordinator events
	TypeNodeStatus = "node_status" // NodeStatus
	TypeLeaving    = "leaving"     // Leaving: the daemon is shutting down gracefully
)

// Message types between a daemon and its nodes (node side dials).
const (
	TypeNodeRegister = "node_register" // NodeRegisterRequest -> NodeRegisterReply
	TypeOutput       = "output"        // node -> daemon event: Output
	TypeCloseOutputs = "close_outputs" // node -> daemon request: CloseOutputs -> Ack
	TypeInput        = "input"         // daemon -> node event: Input
	TypeInputClosed  = "input_closed"  // daemon -> node event: InputClosed
	TypeNodeStop     = "node_stop"     // daemon -> node event: Stop
)

// Ack is the empty reply of requests that only acknowledge.
type Ack struct {
	OK bool `codec:"ok"`
}

// RunningNode is a node a daemon reports as running when it (re)registers.
type RunningNode struct {
	DataflowID string `codec:"df"`
	NodeID     string `codec:"node"`
	PID        int    `codec:"pid"`
}

// String is how logs show a running node: "sink-c/pid 31255 (dataflow <uuid>)".
func (n RunningNode) String() string {
	return fmt.Sprintf("%s/pid %d (dataflow %s)", n.NodeID, n.PID, n.DataflowID)
}

// RegisterRequest opens a daemon's control session.
type RegisterRequest struct {
	Name        string            `codec:"name"`    // daemon's member name in the ring
	Machine     string            `codec:"machine"` // machine id used for placement
	ControlAddr string            `codec:"addr"`    // daemon's own listener (probes, daemon links)
	GossipAddr  string            `codec:"gossip"`  // daemon's memberlist address
	BootEpoch   int64             `codec:"epoch"`   // changes on every daemon start
	Version     string            `codec:"version"`
	Labels      map[string]string `codec:"labels"`
	Running     []RunningNode     `codec:"running"` // what it runs now (reconnect after coordinator loss)
	Protocol    int               `codec:"proto"`
	// KeyProof is RegisterProof(cluster key, Name, BootEpoch); empty without a key.
	KeyProof []byte `codec:"key_proof"`
}

// RegisterReply answers RegisterRequest.
type RegisterReply struct {
	CoordinatorGossip string   `codec:"gossip"` // join the ring here
	Seeds             []string `codec:"seeds"`  // other known members' gossip addresses
	KillDataflows     []string `codec:"kill"`   // fencing: dataflows stopped or failed meanwhile
	StopDataflows     []string `codec:"stop"`   // stop intents recorded while it was away
	// KillNodes fences single nodes of dataflows that still run elsewhere: nodes whose
	// outcome is already recorded here (e.g. lost when this daemon was confirmed dead).
	KillNodes []RunningNode `codec:"kill_nodes"`
}

// Leaving is a daemon's announcement, over its control link, that it is leaving the
// cluster gracefully; the link closes right after.
type Leaving struct {
	Reason string `codec:"reason"`
}

// NodeSpec is what a daemon needs to run one node.
type NodeSpec struct {
	ID         string            `codec:"id"`
	Path       string            `codec:"path"` // resolved executable, "dynamic" or "shell"
	Args       []string          `codec:"args"`
	Env        map[string]string `codec:"env"`
	WorkingDir string            `codec:"wd"`
	Inputs     []InputSpec       `codec:"inputs"`
	Outputs    []string          `codec:"outputs"`
}

// InputSpec is one input of a node: where it comes from and its queue.
type InputSpec struct {
	ID        string        `codec:"id"`
	Node      string        `codec:"node"`   // source node ("" for a timer)
	Output    string        `codec:"output"` // source output
	Timer     time.Duration `codec:"timer"`  // > 0 for dora/timer inputs
	QueueSize int           `codec:"queue"`
}

// SpawnRequest asks a daemon to start its share of a dataflow.
type SpawnRequest struct {
	DataflowID string     `codec:"df"`
	Name       string     `codec:"name"`
	Nodes      []NodeSpec `codec:"nodes"`
	// Placement maps every node of the dataflow to the daemon (member name) running it,
	// and DaemonAddrs maps those daemons to their control address, for cross-daemon routing.
	Placement   map[string]string `codec:"placement"`
	DaemonAddrs map[string]string `codec:"daemons"`
	// Subscriptions lists, for the outputs of this daemon's nodes, the other daemons that
	// run their consumers: each of those outputs is forwarded once to each of them.
	Subscriptions []RemoteSubscription `codec:"subs"`
}

// StopRequest asks a daemon to stop a dataflow's nodes.
type StopRequest struct {
	DataflowID string        `codec:"df"`
	Grace      time.Duration `codec:"grace"` // Stop event, then SIGTERM after Grace, SIGKILL after KillAfter more
	KillAfter  time.Duration `codec:"kill_after"`
	Force      bool          `codec:"force"` // skip the grace: SIGKILL at once
}

// KillRequest fences dataflows a daemon should no longer run.
type KillRequest struct {
	DataflowIDs []string `codec:"dfs"`
}

// DestroyRequest asks a daemon to stop every node and exit.
type DestroyRequest struct {
	Grace time.Duration `codec:"grace"`
}

// LogsRequest reads a node's log from an offset, waiting up to Wait for new data.
type LogsRequest struct {
	DataflowID string        `codec:"df"`
	NodeID     string        `codec:"node"`
	Offset     int64         `codec:"off"`  // -1 with Tail > 0: start Tail lines before the end
	Tail       int           `codec:"tail"` // lines
	Max        int           `codec:"max"`  // bytes per reply
	Wait       time.Duration `codec:"wait"` // long-poll when nothing new
}

// LogsReply carries a chunk of a node's log.
type LogsReply struct {
	Data   []byte `codec:"data"`
	Next   int64  `codec:"next"`
	Ended  bool   `codec:"ended"` // the node has an outcome and everything was read
	Status string `codec:"status"`
}

// Node status words.
const (
	NodePending        = "pending"
	NodeRunning        = "running"
	NodeFinished       = "finished"
	NodeFailed         = "failed"
	NodeStopped        = "stopped"
	NodeKilled         = "killed"          // killed after grace
	NodeLost           = "lost"            // its daemon was confirmed dead
	NodeNeverConnected = "never-connected" // dynamic node that never connected
	NodeWaiting        = "waiting"         // dynamic node not yet connected
)

// IsFinal reports whether a node status is an outcome (nothing more will happen).
func IsFinal(status string) bool {
	switch status {
	case NodeFinished, NodeFailed, NodeStopped, NodeKilled, NodeLost, NodeNeverConnected:
		return true
	}
	return false
}

// NodeStatus reports a node's status change; Final ones are outcomes.
type NodeStatus struct {
	DataflowID string    `codec:"df"`
	NodeID     string    `codec:"node"`
	Status     string    `codec:"status"`
	Outcome    string    `codec:"outcome"` // human text, e.g. "failed (exit 3)", "killed after grace"
	ExitCode   int       `codec:"exit"`
	Signal     string    `codec:"signal"`
	PID        int       `codec:"pid"`
	Time       time.Time `codec:"time"`
}

// NodeRegisterRequest is a node's first request on its daemon link.
type NodeRegisterRequest struct {
	DataflowID string `codec:"df"`    // "" for a dynamic node: the daemon finds it by NodeID
	NodeID     string `codec:"node"`  // node id in the descriptor
	Token      string `codec:"token"` // from EnvNodeToken for spawned nodes
}

// NodeRegisterReply tells a node who it is.
type NodeRegisterReply struct {
	DataflowID string   `codec:"df"`
	NodeID     string   `codec:"node"`
	Inputs     []string `codec:"inputs"`
	Outputs    []string `codec:"outputs"`
}

// Metadata travels with every message.
type Metadata struct {
	Timestamp  int64             `codec:"ts"` // unix nanos when sent by the producer
	Parameters map[string]string `codec:"params"`
}

// Output is a node sending data on one of its outputs.
type Output struct {
	Output   string   `codec:"out"`
	Data     []byte   `codec:"data"`
	Metadata Metadata `codec:"md"`
}

// CloseOutputs tells the daemon a node will send nothing more on these outputs (all if empty).
type CloseOutputs struct {
	Outputs []string `codec:"outs"`
}

// Input is data delivered to a node's input.
type Input struct {
	ID       string   `codec:"id"`
	Data     []byte   `codec:"data"`
	Metadata Metadata `codec:"md"`
	Dropped  uint64   `codec:"dropped"` // messages dropped on this input so far (queue overflow)
}

// InputClosed says an input's producer has ended.
type InputClosed struct {
	ID string `codec:"id"`
}

// Stop asks a node to stop.
type Stop struct {
	Reason string `codec:"reason"`
}
