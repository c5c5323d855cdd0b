package failure

import "time"

// Verdict is the detector's opinion of a member.
type Verdict string

// Verdicts.
const (
	// Alive: in the ring and answering.
	Alive Verdict = "alive"
	// Suspect: not answering directly, or reported gone by gossip without
	// confirmation. Nothing waiting on a suspect fails because of it.
	Suspect Verdict = "suspect"
	// Dead: gossip declared it dead and the control link does not answer
	// either, or its process is provably gone.
	Dead Verdict = "dead"
	// Left: it announced a graceful leave.
	Left Verdict = "left"
)

// Gone reports whether the verdict fails pending work (dead or left).
func (v Verdict) Gone() bool { return v == Dead || v == Left }

// State is a member's verdict with its history.
type State struct {
	// Name is the member's name.
	Name string
	// Verdict is the current verdict.
	Verdict Verdict
	// Since is when the verdict was reached.
	Since time.Time
	// Reason says how the verdict was reached, e.g. "gossip: declared dead
	// by memberlist; control link: no answer for 1s".
	Reason string
}

// timeFormat is how times appear in reasons and errors.
const timeFormat = "15:04:05.000"
