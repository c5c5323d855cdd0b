package dataflow

import "time"

// DefaultQueueSize is the queue size of an input that does not set
// `queue_size`.
const DefaultQueueSize = 10

// Node paths with a special meaning.
const (
	// DynamicPath marks a node that is started outside the runtime and
	// connects to it by id.
	DynamicPath = "dynamic"
	// ShellPath marks a node whose args are run by a shell.
	ShellPath = "shell"
)

// Restart policies accepted in `restart_policy`.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure"
	RestartAlways    = "always"
)

// Descriptor is a parsed and validated dataflow.
type Descriptor struct {
	// Nodes in file order.
	Nodes []*Node
	// Path is the absolute path of the file it was read from ("" if it
	// was parsed from bytes).
	Path string
	// Dir is the absolute directory of the file ("" if parsed from
	// bytes); relative node paths resolve against it.
	Dir string
	// Deploy is the dataflow-level `deploy` (or `_unstable_deploy`)
	// section. Nodes do not inherit it automatically.
	Deploy Deploy
	// Env is the dataflow-level `env`; see EnvFor for the merged
	// environment of a node.
	Env map[string]string
}

// Node is one node of a dataflow.
type Node struct {
	ID          string
	Name        string
	Description string
	// Path is DynamicPath, ShellPath or the executable path as written.
	Path string
	// Args are the command line arguments. The YAML string is split
	// shell-style; a YAML list is taken item by item.
	Args []string
	// Env holds the node's own environment variables, with numbers and
	// booleans turned into their text form.
	Env   map[string]string
	Build string

	Git    string
	Rev    string
	Branch string
	Tag    string

	// Inputs sorted by input id.
	Inputs []Input
	// Outputs in file order. The output named by `send_stdout_as` is
	// included even when it is not listed.
	Outputs []string
	// SendStdoutAs names the output that carries the node's stdout.
	SendStdoutAs string

	// Deploy comes from `deploy` or `_unstable_deploy`.
	Deploy Deploy

	// RestartPolicy is "", RestartNever, RestartOnFailure or
	// RestartAlways.
	RestartPolicy      string
	MaxRestarts        int
	RestartDelay       time.Duration
	MaxRestartDelay    time.Duration
	RestartWindow      time.Duration
	HealthCheckTimeout time.Duration

	InputTypes  map[string]string
	OutputTypes map[string]string

	// Line and Column locate the node in the file.
	Line, Column int

	// operatorNode is set for nodes rejected because they run operators.
	operatorNode bool
}

// Deploy says where a node runs.
type Deploy struct {
	Machine    string
	Labels     map[string]string
	WorkingDir string
}

// Input is one input of a node.
type Input struct {
	ID     string
	Source Source
	// QueueSize is the number of pending messages kept for the input.
	QueueSize int
	// Timeout is `input_timeout` from the long form (0 if unset).
	Timeout time.Duration
	// Line and Column locate the input id in the file.
	Line, Column int
}

// SourceKind tells what feeds an input.
type SourceKind int

// Source kinds.
const (
	// SourceNode is the output of another node.
	SourceNode SourceKind = iota + 1
	// SourceTimer is a periodic tick from the runtime.
	SourceTimer
)

// Source is what feeds an input: a node output or a timer.
type Source struct {
	Kind SourceKind
	// Node and Output are set for SourceNode.
	Node, Output string
	// Interval is set for SourceTimer.
	Interval time.Duration
}

// Subscriber is an input that receives a given output.
type Subscriber struct {
	Node      string
	Input     string
	QueueSize int
}
