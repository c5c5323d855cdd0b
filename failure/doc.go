// Package failure decides, per ring member, whether it is alive, suspect,
// dead or left, and fails pending work on members confirmed dead.
//
// The Detector combines three sources: gossip events (memberlist's join and
// leave notifications, whose leave means "dead or left"), the health of the
// coordinator's own control link to the member, and a reachability probe of
// the member's control port (a refused connection proves the process is
// gone). Suspicion never fails anything; a confirmed death fails every
// Pending operation on the member at once, with a DeathError that says when
// and how the death was confirmed.
//
// HeartbeatDetector is a baseline for comparison: a central heartbeat with a
// fixed timeout, as in dora-rs.
//
// The package knows nothing of dataflows.
package failure
