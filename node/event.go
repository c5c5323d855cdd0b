package node

import "github.com/doractl/doractl/proto"

// EventType tells what an Event carries.
type EventType int

// Event types.
const (
	// EventInput carries data that arrived on input ID.
	EventInput EventType = iota + 1
	// EventInputClosed says the producer of input ID has ended: nothing more will arrive
	// on it.
	EventInputClosed
	// EventStop asks the node to stop: finish up and return (exit 0).
	EventStop
	// EventAllInputsClosed follows the EventInputClosed of the node's last open input. A
	// node without inputs never gets it.
	EventAllInputsClosed
)

func (t EventType) String() string {
	switch t {
	case EventInput:
		return "Input"
	case EventInputClosed:
		return "InputClosed"
	case EventStop:
		return "Stop"
	case EventAllInputsClosed:
		return "AllInputsClosed"
	}
	return "Unknown"
}

// Event is one thing that happened to the node.
type Event struct {
	Type EventType
	// ID is the input id (EventInput, EventInputClosed).
	ID string
	// Data and Metadata are the message (EventInput).
	Data     []byte
	Metadata proto.Metadata
	// Dropped counts the messages of this input dropped so far because the node did not
	// keep up (EventInput).
	Dropped uint64
	// Reason says why the node is asked to stop (EventStop).
	Reason string
}
