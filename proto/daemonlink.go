package proto

// Message types between daemons, and the coordinator's death notices to daemons. A daemon
// with local producers whose outputs have consumers on other daemons dials each of those
// daemons' control listener (RegisterRequest.ControlAddr) and sends these as events, in
// order, over one link per peer.
const (
	// daemon -> daemon request, first on a link: DaemonHello -> Ack
	TypeDaemonHello = "daemon_hello"
	// daemon -> daemon events
	TypeRemoteOutput       = "remote_output"        // RemoteOutput
	TypeRemoteOutputClosed = "remote_output_closed" // RemoteOutputClosed
	// coordinator -> daemon request: DaemonDead -> Ack
	TypeDaemonDead = "daemon_dead"
)

// DaemonHello names the daemon at the dialing end of a daemon<->daemon link.
type DaemonHello struct {
	Name      string `codec:"name"`
	BootEpoch int64  `codec:"epoch"`
	Protocol  int    `codec:"proto"`
	// KeyProof is HelloProof(cluster key, Name, BootEpoch); empty without a key.
	KeyProof []byte `codec:"key_proof"`
}

// RemoteOutput is one message a node sent on one of its outputs, forwarded once to every
// other daemon that runs consumers of that output.
type RemoteOutput struct {
	DataflowID string   `codec:"df"`
	Node       string   `codec:"node"`
	Output     string   `codec:"out"`
	Data       []byte   `codec:"data"`
	Metadata   Metadata `codec:"md"`
}

// RemoteOutputClosed says a node will send nothing more on these outputs (it ended, or
// closed them): their consumers get InputClosed.
type RemoteOutputClosed struct {
	DataflowID string   `codec:"df"`
	Node       string   `codec:"node"`
	Outputs    []string `codec:"outs"`
}

// RemoteSubscription says which daemons run consumers of one output of a node placed on
// the daemon receiving the SpawnRequest.
type RemoteSubscription struct {
	Node    string   `codec:"node"`
	Output  string   `codec:"out"`
	Daemons []string `codec:"daemons"`
}

// DaemonDead tells a daemon that another daemon was confirmed dead (or left): the inputs of
// its nodes fed by the dead daemon's nodes are closed. DataflowIDs limits the notice to
// these dataflows (all of them when empty).
type DaemonDead struct {
	Name        string   `codec:"name"`
	DataflowIDs []string `codec:"dfs"`
	Reason      string   `codec:"reason"`
}
