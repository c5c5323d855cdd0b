package proto

import "time"

// JSON shapes of the coordinator's HTTP control API (CLI <-> coordinator). Scripts rely on
// the json names: change them only with a new API version.
//
//	GET  /v1/health                          -> Health
//	GET  /v1/members                         -> []Member
//	POST /v1/dataflows          APIStartRequest -> APIStartReply
//	GET  /v1/dataflows                       -> []Dataflow
//	GET  /v1/dataflows/{ref}                 -> Dataflow        (ref = UUID or name)
//	POST /v1/dataflows/{ref}/stop APIStopRequest -> APIStopReply
//	GET  /v1/dataflows/{ref}/logs/{node}?tail=N&follow=true -> text/plain stream
//	POST /v1/destroy        APIDestroyRequest   -> APIDestroyReply
//	GET  /metrics                            -> Prometheus text
//
// Errors are any non-2xx status with an APIError body.

// APIPrefix is the path prefix of every versioned endpoint.
const APIPrefix = "/v1"

// APIError is the body of every error reply.
type APIError struct {
	Error string `json:"error"`
}

// Health answers /v1/health.
type Health struct {
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
	Daemons   int       `json:"daemons"`
	// Profile is the gossip profile the coordinator runs ("" without gossip).
	Profile string `json:"profile,omitempty"`
	// ClusterKey says whether the coordinator has a cluster key (the API requires it).
	ClusterKey bool `json:"cluster_key"`
}

// Member is one member of the gossip ring as the coordinator sees it.
type Member struct {
	Name    string            `json:"name"`
	Role    string            `json:"role"` // coordinator | daemon
	Machine string            `json:"machine"`
	Address string            `json:"address"` // gossip host:port
	Status  string            `json:"status"`  // alive | suspect | dead | left
	Since   time.Time         `json:"since"`
	Reason  string            `json:"reason,omitempty"` // how the status was reached
	Labels  map[string]string `json:"labels,omitempty"`
	Version string            `json:"version,omitempty"`
}

// Member status words.
const (
	MemberAlive   = "alive"
	MemberSuspect = "suspect"
	MemberDead    = "dead"
	MemberLeft    = "left"
)

// Dataflow status words.
const (
	DataflowRunning  = "running"
	DataflowStopping = "stopping"
	DataflowFinished = "finished"
	DataflowFailed   = "failed"
)

// APIStartRequest submits a dataflow.
type APIStartRequest struct {
	Name       string `json:"name,omitempty"`
	Descriptor string `json:"descriptor"`  // the YAML text
	Path       string `json:"path"`        // where the CLI read it (for error messages)
	WorkingDir string `json:"working_dir"` // absolute folder of the descriptor; relative node paths resolve here
}

// APIStartReply answers APIStartRequest once every daemon has acknowledged its nodes.
type APIStartReply struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Dataflow is a dataflow and its nodes.
type Dataflow struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Status    string     `json:"status"`
	Nodes     []NodeInfo `json:"nodes"`
	Machines  []string   `json:"machines"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	Reason    string     `json:"reason,omitempty"` // why it failed, or who stopped it
}

// NodeInfo is one node of a dataflow.
type NodeInfo struct {
	ID      string    `json:"id"`
	Machine string    `json:"machine"`
	Daemon  string    `json:"daemon"`
	Status  string    `json:"status"`            // pending | running | waiting | finished | failed | stopped | killed | lost | never-connected
	Outcome string    `json:"outcome,omitempty"` // e.g. "killed after grace", "lost (daemon D dead: ...)"
	PID     int       `json:"pid,omitempty"`
	Since   time.Time `json:"since"`
}

// APIStopRequest asks for a dataflow to stop. Durations are Go duration strings ("10s").
type APIStopRequest struct {
	Grace   string `json:"grace,omitempty"`   // default 10s
	Timeout string `json:"timeout,omitempty"` // default grace + kill window + 10s
	Force   bool   `json:"force,omitempty"`
	Detach  bool   `json:"detach,omitempty"` // return once the stop intent is recorded
}

// APIStopReply is what the coordinator knows when the stop completed or its deadline passed.
type APIStopReply struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Status      string     `json:"status"`
	Nodes       []NodeInfo `json:"nodes"`
	Unconfirmed []string   `json:"unconfirmed,omitempty"` // daemons that did not confirm before the deadline
	Error       string     `json:"error,omitempty"`       // one-line reason when not clean
	Elapsed     string     `json:"elapsed"`
	// AlreadyEnded is set when the dataflow had ended before this request: Elapsed is
	// then the duration of the stop that ended it (from the stop request to the last
	// outcome), or empty when it ended without a stop.
	AlreadyEnded bool `json:"already_ended,omitempty"`
	// Joined is set when this request joined a stop already in progress instead of
	// starting one: it says when that stop was asked and with which grace, which apply.
	Joined string `json:"joined,omitempty"`
}

// APIDestroyRequest stops every dataflow, daemon and the coordinator.
type APIDestroyRequest struct {
	Grace string `json:"grace,omitempty"`
}

// APIDestroyReply answers APIDestroyRequest before the coordinator exits.
type APIDestroyReply struct {
	Dataflows []APIStopReply `json:"dataflows"`
	Daemons   []string       `json:"daemons"`
}

// LogsEndMarker starts the last line of a log stream the coordinator ended because the
// node's daemon is gone or failed ("-- log stream ended: daemon "D" confirmed dead ... --"):
// clients treat such an end as an error.
const LogsEndMarker = "-- log stream ended: "
