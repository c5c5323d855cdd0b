package daemon

import "github.com/doractl/doractl/proto"

// RemoteSink carries outputs of local nodes to subscribers on other daemons. The router
// calls it for every output of a dataflow that has nodes placed on other daemons (the
// SpawnRequest's Placement tells which); its methods are called on hot paths and must not
// block. Data arriving from other daemons enters through the same router path as local
// outputs (router.publish), so local subscribers cannot tell the difference.
type RemoteSink interface {
	// Output is one message sent by a local node on one of its outputs.
	Output(dataflowID, node, output string, data []byte, md proto.Metadata)
	// OutputsClosed says a local node will send nothing more on these outputs.
	OutputsClosed(dataflowID, node string, outputs []string)
}

// NoRemote is the RemoteSink of a daemon without daemon<->daemon links: it discards
// everything, so only local subscribers receive data.
type NoRemote struct{}

// Output discards the message.
func (NoRemote) Output(string, string, string, []byte, proto.Metadata) {}

// OutputsClosed does nothing.
func (NoRemote) OutputsClosed(string, string, []string) {}
