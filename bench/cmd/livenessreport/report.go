package main

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/doractl/doractl/bench/internal/markdown"
	"github.com/doractl/doractl/bench/internal/stats"
)

// sectionTitle is the heading of the section this command owns in the output file.
const sectionTitle = "## Liveness: SWIM vs central heartbeat"

// Targets.
const (
	targetLoadRatio = 1.5  // per-member gossip load, largest N over smallest N
	targetFlakyLoss = 0.20 // zero false deaths at this loss on flaky
)

// report is everything one run measured, and where it ran.
type report struct {
	command        string
	date           time.Time
	cpus           int
	goVersion      string
	loadBefore     string
	loadAfterCrash string
	loadAfterFalse string
	loadAfter      string
	wall           time.Duration
	opts           options
	args           []string // the command line flags

	crash []*crashResult
	loss  []*lossResult
	stall []*stallResult
	load  []*loadResult
}

var profileOrder = map[string]int{"lan": 0, "local": 1, "flaky": 2, "wan": 3}

func detOrder(d string) int {
	switch d {
	case "SWIM":
		return 0
	case detVerdict:
		return 1
	}
	return 2
}

func (r *report) sort() {
	slices.SortFunc(r.crash, func(a, b *crashResult) int {
		return cmp.Or(cmp.Compare(detOrder(a.detector), detOrder(b.detector)), strings.Compare(b.fault, a.fault),
			cmp.Compare(profileOrder[a.profile], profileOrder[b.profile]), cmp.Compare(a.n, b.n))
	})
	slices.SortFunc(r.loss, func(a, b *lossResult) int {
		return cmp.Or(cmp.Compare(a.loss, b.loss), cmp.Compare(detOrder(a.detector), detOrder(b.detector)),
			cmp.Compare(profileOrder[a.profile], profileOrder[b.profile]), strings.Compare(a.profile, b.profile))
	})
	slices.SortFunc(r.stall, func(a, b *stallResult) int {
		return cmp.Or(cmp.Compare(a.stall, b.stall), cmp.Compare(detOrder(a.detector), detOrder(b.detector)),
			cmp.Compare(profileOrder[a.profile], profileOrder[b.profile]))
	})
	slices.SortFunc(r.load, func(a, b *loadResult) int { return cmp.Compare(a.n, b.n) })
}

// sectionName names the markers of the section this command owns in the output file.
const sectionName = "livenessreport"

// write puts the section into path between its markers (appended, with the markers, if
// they are absent), leaving the rest of the file byte for byte.
func (r *report) write(path string) error {
	var b bytes.Buffer
	r.render(&b)
	return markdown.WriteSection(path, r.opts.section, b.String(), "# Benchmarks\n\n")
}

func (r *report) render(b *bytes.Buffer) {
	o := r.opts
	title := sectionTitle
	if o.section != sectionName {
		title += " (" + o.section + ")"
	}
	fmt.Fprintf(b, "%s\n\n", title)
	fmt.Fprintf(b, "Measured side by side in one run of %s, about %s of wall time, with one fault schedule "+
		"for both detectors.\n\n", r.commandLine(), r.wall.Round(10*time.Second))
	fmt.Fprintf(b, "| date | nproc | Go | load average before | after crash phase | after false-death phase | after load phase |\n"+
		"| --- | --- | --- | --- | --- | --- | --- |\n| %s | %d | %s | %s | %s | %s | %s |\n\n",
		r.date.Format("2006-01-02 15:04 MST"), r.cpus, r.goVersion, r.loadBefore, r.loadAfterCrash, r.loadAfterFalse, r.loadAfter)
	fmt.Fprintf(b, "The machine was shared with other timing-sensitive work during the run (see the load averages): "+
		"treat the tails as noisy.\n\n")
	fmt.Fprintf(b, "- **SWIM**: every member is a `cluster.Ring` in this process, on its own loopback IP (127.42.x.y) "+
		"behind a `cluster.FaultTransport` (real UDP and TCP sockets), with the named profile and the default rejoin "+
		"interval (10 s). The observer is the coordinator member; a dead verdict is a `MemberLeave` event with "+
		"`Leaving = false` on its `Events()`. Rings of different conditions run at the same time (they share only the CPUs).\n")
	fmt.Fprintf(b, "- **heartbeat**: `failure.HeartbeatDetector` with dora's scheme (a beat every 5 s, dead after 20 s "+
		"without one, sweep every 1 s) as the coordinator; each daemon is a goroutine that beats into it in-process, "+
		"from a random phase. A beat is one message lost as a packet between two `FaultTransport`s is: the drop "+
		"probability is rolled (`math/rand/v2`) once for the daemon's side and once for the coordinator's; a stall "+
		"holds beats and delivers the held one when it ends.\n")
	fmt.Fprintf(b, "- **doractl verdict**: the same SWIM rings, with the coordinator's verdict as the product gives it "+
		"(docs/failure-model.md): a `failure.Detector` wired as `coordinator/liveness.go` wires it — the coordinator "+
		"member's ring events feed `GossipJoin`/`GossipGone`, `Ping` is the coordinator ring's direct gossip ping, and "+
		"`ControlCheck` pings over a real `proto.Conn` control link from each daemon member (kernel TCP over loopback "+
		"between the two members' IPs, keepalive %s, idle timeout %s, reconnect backoff %s–%s, as the daemon session; "+
		"registration → `LinkUp`, a closed link → `LinkDown`, control port a real listener of the daemon). A dead verdict "+
		"is `memberlist declared it dead` **and** neither the control link nor a gossip ping answered within the "+
		"profile's confirm timeout (`ConfirmTimeout`: 1 s, flaky and wan 2 s; or the link was already down), or the port "+
		"refusing connections; the same checks run back to back on a member silent for 1.5 s before the verdict, and "+
		"one that ended within confirm timeout + 500 ms of it, with the port refusing or silent and the member unheard "+
		"since it began, is the confirmation (a vanished host is dead with gossip's verdict); on a profile with a stall grace (`StallGrace`: flaky and wan, 20 s) a "+
		"member whose port still accepts connections (its host answers, the process does not) stays suspect until it "+
		"has been unheard for the grace. The port dial goes through the same loss model: its SYN is lost like a "+
		"segment (a timeout), a vanished member's port never answers, a stalled member's still accepts (the kernel "+
		"completes the handshake of a stopped process's listening socket). *Link loss model*: TCP retransmits rather than loses, so each frame written on the link is one segment "+
		"dropped with the same per-packet probability as the members' transports (rolled for the sender's and the "+
		"receiver's transport, as a gossip packet is) and resent after Linux's minimum RTO, %s, doubling for each "+
		"further loss of the same segment (after 15 losses TCP gives up on it, as Linux's `tcp_retries2`, and the link "+
		"idles out), with later frames waiting behind it (in-order delivery); a reconnect's SYN "+
		"is lost the same way with a 1 s SYN timeout. A stalled member writes nothing on its link and does not dial "+
		"until the stall ends (what it was sent waits in its socket buffer). This is kinder than real TCP on one "+
		"point (no congestion-window collapse) and harsher on another (loopback ACKs are never lost, but every lost "+
		"segment costs a full RTO, never a fast retransmit).\n\n",
		linkKeepAlive, linkIdle, reconnectMin, reconnectMax, segRTO)

	if len(r.crash) > 0 {
		r.renderCrash(b)
	}
	if len(r.loss) > 0 {
		r.renderLoss(b, o)
	}
	if len(r.stall) > 0 {
		r.renderStall(b, o)
	}
	if len(r.load) > 0 {
		r.renderLoad(b)
	}
	r.renderTargets(b)
}

// commandLine is the reproducing command, with the driver's own command line beside it
// when the two differ (e.g. `make bench-liveness`, which sets -loss-duration). The
// -command and -out flags are left out of the driver's line: they do not change figures.
func (r *report) commandLine() string {
	var kept []string
	for i := 0; i < len(r.args); i++ {
		a := strings.TrimLeft(r.args[i], "-")
		name, _, hasValue := strings.Cut(a, "=")
		if name == "command" || name == "out" {
			if !hasValue {
				i++ // the flag's value is the next argument
			}
			continue
		}
		kept = append(kept, r.args[i])
	}
	driver := strings.TrimSpace("go run ./bench/cmd/livenessreport " + strings.Join(kept, " "))
	if r.command == "" || r.command == driver {
		return "`" + driver + "`"
	}
	return "`" + r.command + "` (`" + driver + "`)"
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func (r *report) renderCrash(b *bytes.Buffer) {
	fmt.Fprintf(b, "### Crash detection latency\n\n")
	fmt.Fprintf(b, "Two faults, each taken 1–2 probe intervals after the ring converged, at a random phase, on a random "+
		"daemon. Both stall its transport endlessly (`Stall`: nothing in or out), so gossip sees only silence. *%s*: "+
		"its transport also drops everything (`SetDropRate(1)`, UDP and TCP, both ways), its control link freezes and "+
		"its control port stops answering (a host that lost power or radio range, or froze). *%s*: the kernel closes the process's sockets, so its control link "+
		"ends and its port refuses connections. Latency is from the fault to the coordinator's dead verdict (*SWIM*: "+
		"memberlist's `MemberLeave`; *doractl verdict*: the detector's confirmed death). After each trial the victim is "+
		"shut down and a fresh member joins, so the ring stays at N (memberlist still counts the dead entry for a while). "+
		"Heartbeat: each trial is its own detector with N − 1 daemons; a random daemon stops beating 10–15 s after the "+
		"start (both faults look the same to it). With ≤ 10 trials p99 is the slowest trial (nearest rank).\n\n",
		faultVanish, faultKill)
	markdown.Table(b, "detector", "fault", "profile", "N", "trials", "detected", "p50", "p99", "min")
	for _, c := range r.crash {
		p50, p99, lo := "—", "—", "—"
		if len(c.latencies) > 0 {
			p50, p99, lo = dur(stats.NearestRank(c.latencies, 50)), dur(stats.NearestRank(c.latencies, 99)), dur(slices.Min(c.latencies))
		}
		det := fmt.Sprintf("%d", len(c.latencies))
		if c.err != "" {
			det += " (" + c.err + ")"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %s | %s | %s | %s |\n", c.detector, c.fault, c.profile, c.n, c.trials, det, p50, p99, lo)
	}
	b.WriteString("\n")
}

// dur formats a latency: seconds with one decimal, or milliseconds below one second.
func dur(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return secs(d)
}

// perHour formats a count over a duration as a rate per hour, with the 95 % upper bound
// (rule of three) for a zero count.
func perHour(count int, over time.Duration) string {
	h := over.Hours()
	if h <= 0 {
		return "—"
	}
	if count == 0 {
		return fmt.Sprintf("0 (< %.0f at 95 %%)", 3/h)
	}
	return fmt.Sprintf("%.0f", float64(count)/h)
}

// endToEnd is the probability that a message is lost when the per-transport drop
// probability p is rolled on send and again on receive, as FaultTransport does.
func endToEnd(p float64) float64 { return 1 - (1-p)*(1-p) }

// hbExpected is the heartbeat's expected false deaths per hour at the coordinator with
// n-1 daemons and per-transport drop probability p: a death starts when a delivered beat
// is followed by four lost ones, each beat lost end to end with endToEnd(p).
func hbExpected(n int, p float64) float64 {
	pe := endToEnd(p)
	return float64(n-1) * 3600 / 5 * (1 - pe) * math.Pow(pe, 4)
}

func (r *report) renderLoss(b *bytes.Buffer, o options) {
	fmt.Fprintf(b, "### False deaths under packet loss (N = 5)\n\n")
	fmt.Fprintf(b, "*Loss model*: the loss column is the per-transport drop probability p, rolled on send and again on "+
		"receive for every SWIM packet or stream, every control-link segment and every heartbeat beat alike, so each "+
		"message is lost end to end with p_end = 1 − (1 − p)² (%s).\n\n", endToEndList(o.rates))
	fmt.Fprintf(b, "Every member's transport drops packets and streams (UDP and TCP) with the given probability; each "+
		"condition runs for %s of wall time, all conditions at once, and the counts are **extrapolated to one hour** "+
		"(count × 1 h / run time; a zero is shown with its 95 %% upper bound, 3 / run time). *At coordinator*: dead "+
		"verdicts on any of the 4 daemons as the coordinator saw them (the figure); *at any member*: every member's "+
		"dead verdicts on any other, summed (SWIM only). Every false death fails whatever was pending on that "+
		"member, even when the member is back moments later. The heartbeat runs once in real time on the "+
		"same schedule and once with its clock compressed ×%d (beat 500 ms, timeout 2 s: %s of detector time); "+
		"*expected* is the analytic rate, 4 daemons × 720 beats/h × (1 − p_end) × p_end⁴, the better estimate for the heartbeat since its "+
		"runs count only a few events. *doractl verdict*: on the same SWIM ring, the coordinator detector's dead verdicts "+
		"(memberlist's death confirmed by the control link not answering); the raw SWIM columns count memberlist's "+
		"deaths alone, which the product treats as suspicion.\n\n",
		o.lossDuration, baselineScale, o.lossDuration*baselineScale)
	markdown.Table(b, "loss", "detector", "profile", "run (detector time)", "at coordinator", "per hour (extrapolated)", "at any member", "expected per hour", "doractl verdict at coordinator", "doractl verdict per hour")
	for _, l := range r.loss {
		anyM, exp, ver, verH := "—", "—", "—", "—"
		if l.verdict >= 0 && l.err == "" {
			ver, verH = fmt.Sprintf("%d", l.verdict), perHour(l.verdict, l.simulated)
		}
		if l.atAny >= 0 {
			anyM = fmt.Sprintf("%d", l.atAny)
		}
		if l.detector == "heartbeat" {
			exp = fmt.Sprintf("%.2f", hbExpected(l.n, l.loss))
		}
		run := l.simulated.Round(time.Second).String()
		if l.err != "" {
			run = "error: " + l.err
		}
		fmt.Fprintf(b, "| %.0f %% | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", l.loss*100, l.detector, l.profile, run,
			l.atCoord, perHour(l.atCoord, l.simulated), anyM, exp, ver, verH)
	}
	b.WriteString("\n")
}

// endToEndList lists p → p_end for the loss rates of phase 2.
func endToEndList(rates []float64) string {
	var parts []string
	for _, p := range rates {
		if p > 0 {
			parts = append(parts, fmt.Sprintf("%.0f %% → %.0f %%", p*100, endToEnd(p)*100))
		}
	}
	return strings.Join(parts, ", ")
}

func (r *report) renderStall(b *bytes.Buffer, o options) {
	fmt.Fprintf(b, "### False deaths under a process stall (N = 5)\n\n")
	fmt.Fprintf(b, "One daemon at a time (rotating) is stalled (`FaultTransport.Stall`: nothing in or out, held traffic "+
		"delivered when it ends; heartbeat: beats held), %d times per condition, each followed by %s of "+
		"observation. *Killed*: stalls after which the coordinator declared the stalled member dead. *Per hour*: if "+
		"one such stall happened every %s (the condition's own schedule), extrapolated. *doractl verdict*: the same stalls "+
		"as the coordinator's detector judged them (its link to the member is frozen too, its port still accepts "+
		"connections).\n\n",
		o.stalls, o.stallRecover, (stallDurations[0]+o.stallRecover).String()+"–"+(stallDurations[len(stallDurations)-1]+o.stallRecover).String())
	markdown.Table(b, "stall", "detector", "profile", "stalls", "killed", "stall → dead verdict", "per hour (extrapolated)", "doractl verdict killed", "stall → doractl dead verdict")
	list := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "—"
		}
		parts := make([]string, len(ds))
		for i, d := range ds {
			parts[i] = secs(d)
		}
		return strings.Join(parts, ", ")
	}
	for _, s := range r.stall {
		at := list(s.firstAt)
		vk, vat := "—", "—"
		if s.verdictKilled >= 0 && s.err == "" {
			vk, vat = fmt.Sprintf("%d", s.verdictKilled), list(s.verdictAt)
		}
		killed := fmt.Sprintf("%d", s.killed)
		if s.err != "" {
			killed = "error: " + s.err
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", s.stall, s.detector, s.profile, s.stalls, killed, at,
			perHour(s.killed, s.duration), vk, vat)
	}
	b.WriteString("\n")
}

func (r *report) renderLoad(b *bytes.Buffer) {
	fmt.Fprintf(b, "### Gossip load per member\n\n")
	fmt.Fprintf(b, "N in-process members on the lan profile (plain transports, one loopback IP each), joined through the "+
		"coordinator; once every member sees all N and 10 s have passed, `Ring.Stats` of every member is read before "+
		"and after the window. *Messages* = UDP packets + TCP streams opened (probes, acks, indirect probes, gossip, "+
		"push/pull), per second per member; the heartbeat baseline sends 0.2 per second per daemon, but its "+
		"coordinator receives 0.2 × (N − 1).\n\n")
	markdown.Table(b, "N", "window", "converged in", "messages sent /s/member (mean)", "max member", "received /s/member", "packets /s", "streams /s", "bytes sent /s/member", "vs smallest N")
	var base float64
	for _, l := range r.load {
		if l.err != "" {
			fmt.Fprintf(b, "| %d | error: %s | | | | | | | | |\n", l.n, l.err)
			continue
		}
		if base == 0 {
			base = l.sentPerMember
		}
		fmt.Fprintf(b, "| %d | %s | %s | %.2f | %.2f | %.2f | %.2f | %.3f | %.0f | %.2f× |\n", l.n, l.window, secs(l.convergeTime),
			l.sentPerMember, l.sentMax, l.recvPerMember, l.packetsPerMember, l.streamsPerMember, l.bytesPerMember, l.sentPerMember/base)
	}
	b.WriteString("\n")
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func (r *report) renderTargets(b *bytes.Buffer) {
	fmt.Fprintf(b, "### Against the targets\n\n")
	fmt.Fprintf(b, "Judged on the *doractl verdict* (SWIM as the product uses it); raw memberlist rows are shown "+
		"beside it for reference, they are not the product's verdict.\n\n| target | result | met |\n| --- | --- | --- |\n")
	// Flat load.
	var first, last *loadResult
	for _, l := range r.load {
		if l.err != "" {
			continue
		}
		if first == nil {
			first = l
		}
		last = l
	}
	if first != nil && last != first {
		ratio := last.sentPerMember / first.sentPerMember
		fmt.Fprintf(b, "| per-member gossip load flat: N = %d → %d within %.1f× | %.2f → %.2f msg/s (%.2f×) | %s |\n",
			first.n, last.n, targetLoadRatio, first.sentPerMember, last.sentPerMember, ratio, yesNo(ratio <= targetLoadRatio))
	}
	// Zero false deaths at 20 % on flaky.
	for _, l := range r.loss {
		if l.detector == "SWIM" && l.profile == "flaky" && l.loss == targetFlakyLoss {
			fmt.Fprintf(b, "| zero false deaths at %.0f %% loss on flaky (N = 5, doractl verdict at the coordinator) | %d in %s (< %.0f/h at 95 %% if 0) | %s |\n",
				targetFlakyLoss*100, l.verdict, l.duration.Round(time.Second), 3/l.simulated.Hours(), yesNo(l.verdict == 0 && l.err == ""))
			fmt.Fprintf(b, "| (raw memberlist, for reference) | %d at the coordinator, %d at any member | — |\n", l.atCoord, l.atAny)
		}
	}
	// Latency.
	hb := map[int]*crashResult{}
	for _, c := range r.crash {
		if c.detector == "heartbeat" {
			hb[c.n] = c
		}
	}
	for _, c := range r.crash {
		h := hb[c.n]
		if c.detector != detVerdict || h == nil || len(c.latencies) == 0 || len(h.latencies) == 0 {
			continue
		}
		p50, p99 := stats.NearestRank(c.latencies, 50), stats.NearestRank(c.latencies, 99)
		h50, h99 := stats.NearestRank(h.latencies, 50), stats.NearestRank(h.latencies, 99)
		met := yesNo(p50 < h50 && p99 < h99)
		fmt.Fprintf(b, "| %s %s ahead of heartbeat on crash latency (%s), N = %d (p50 and p99) | %s / %s vs %s / %s | %s |\n",
			c.detector, c.profile, c.fault, c.n, dur(p50), dur(p99), dur(h50), dur(h99), met)
	}
	// False deaths under loss: doractl per hour vs the heartbeat's expected rate.
	for _, l := range r.loss {
		if l.detector != "SWIM" || l.loss == 0 || l.err != "" {
			continue
		}
		exp := hbExpected(l.n, l.loss)
		rate := float64(l.verdict) / l.simulated.Hours()
		bound := 3 / l.simulated.Hours()
		met := yesNo(rate < exp)
		got := fmt.Sprintf("%.0f/h (%d in %s)", rate, l.verdict, l.duration.Round(time.Second))
		if l.verdict == 0 {
			got = fmt.Sprintf("0 in %s (< %.0f/h at 95 %%)", l.duration.Round(time.Second), bound)
			met = "yes"
			if bound >= exp {
				met = "not resolved (run too short)"
			}
		}
		fmt.Fprintf(b, "| doractl verdict %s fewer false deaths than heartbeat at %.0f %% loss | %s vs %.2f/h expected (raw memberlist: %d) | %s |\n",
			l.profile, l.loss*100, got, exp, l.atCoord, met)
	}
	// Stalls.
	hbStall := map[time.Duration]*stallResult{}
	for _, s := range r.stall {
		if s.detector == "heartbeat" {
			hbStall[s.stall] = s
		}
	}
	for _, s := range r.stall {
		h := hbStall[s.stall]
		if s.detector != "SWIM" || h == nil || s.err != "" {
			continue
		}
		fmt.Fprintf(b, "| doractl verdict %s no more false deaths than heartbeat under a %s stall | %d/%d vs %d/%d stalls killed (raw memberlist: %d/%d) | %s |\n",
			s.profile, s.stall, s.verdictKilled, s.stalls, h.killed, h.stalls, s.killed, s.stalls, yesNo(s.verdictKilled <= h.killed))
	}
	b.WriteString("\n")
}
