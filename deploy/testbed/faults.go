package testbed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Every host namespace holds two nftables tables named after the bed:
//
//	table inet NAME    chain partition  (hook input, priority 0)   drops by source address
//	                   chain lossin     (hook input, priority 1)   random loss of what arrives
//	table netdev NAME  chain lossout    (hook egress on eth0)      random loss of what leaves
//
// Drops happen where a packet arrives, or after it has left the host's stack,
// never in the output hook: a sender sees a silent network, not EPERM.
// Rules live in the kernel, so a bed found again with Open has its faults.

func tablesScript(table, iface string) string {
	return fmt.Sprintf(`table inet %[1]s {
	chain partition { type filter hook input priority 0; policy accept; }
	chain lossin { type filter hook input priority 1; policy accept; }
}
table netdev %[1]s {
	chain lossout { type filter hook egress device %[2]q priority 0; policy accept; }
}
`, table, iface)
}

func lossScript(table string, in, out int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "flush chain inet %s lossin\n", table)
	if in > 0 {
		// Loopback is spared: the loss is of what crosses the host's link, not of a
		// host talking to itself (a CLI and its coordinator on one host).
		fmt.Fprintf(&s, "add rule inet %s lossin iifname != \"lo\" %sdrop\n", table, chance(in))
	}
	fmt.Fprintf(&s, "flush chain netdev %s lossout\n", table)
	if out > 0 {
		// ARP is spared: the loss is of IP traffic.
		fmt.Fprintf(&s, "add rule netdev %s lossout meta protocol { ip, ip6 } %sdrop\n", table, chance(out))
	}
	return s.String()
}

// chance is the match of a rule that applies to percent % of packets.
func chance(percent int) string {
	if percent >= 100 {
		return "" // numgen's range is 0-99: "< 100" is refused
	}
	return fmt.Sprintf("numgen random mod 100 < %d ", percent)
}

func (b *Bed) nft(ctx context.Context, h *Host, script string) error {
	_, err := b.run(ctx, script, "ip", "netns", "exec", h.Namespace, "nft", "-f", "-")
	return err
}

func (b *Bed) ensureTables(ctx context.Context, h *Host) error {
	err := b.nft(ctx, h, tablesScript(b.name, h.Iface))
	if err != nil && strings.Contains(err.Error(), "syntax error") {
		return fmt.Errorf("testbed: nftables tables for %s (%q is an nftables keyword? pick another name): %w", h.Name, b.name, err)
	}
	if err != nil {
		return fmt.Errorf("testbed: nftables tables for %s: %w", h.Name, err)
	}
	return nil
}

// check returns an error if the bed is closed or a host is not one of its own.
func (b *Bed) check(hosts ...*Host) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errors.New("testbed: bed is closed")
	}
	for _, h := range hosts {
		if h == nil {
			return errors.New("testbed: nil host")
		}
		if h.bed != b {
			return fmt.Errorf("testbed: host %s is not part of bed %s", h.Name, b.name)
		}
	}
	return nil
}

func (b *Bed) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.timeout)
}

// Partition drops all traffic between the hosts of a and those of c, both
// ways. Traffic within a, within c, and with other hosts still passes.
// Faults add up until Heal.
func (b *Bed) Partition(a, c []*Host) error {
	if err := b.check(append(append([]*Host(nil), a...), c...)...); err != nil {
		return err
	}
	if len(a) == 0 || len(c) == 0 {
		return errors.New("testbed: partition: both sides need at least one host")
	}
	for _, x := range a {
		for _, y := range c {
			if x == y {
				return fmt.Errorf("testbed: partition: %s is on both sides", x.Name)
			}
		}
	}
	ctx, cancel := b.ctx()
	defer cancel()
	for _, side := range [][2][]*Host{{a, c}, {c, a}} {
		from := addrSet(side[1])
		for _, h := range side[0] {
			script := fmt.Sprintf("add rule inet %s partition ip saddr %s drop\n", b.name, from)
			if err := b.nft(ctx, h, script); err != nil {
				return fmt.Errorf("testbed: partition: %w", err)
			}
		}
	}
	b.log.Debug("partition", "a", names(a), "c", names(c))
	return nil
}

// OneWay drops the packets that from sends to to; packets from to to from
// still pass. (A TCP handshake then fails in both directions.)
func (b *Bed) OneWay(from, to *Host) error {
	if err := b.check(from, to); err != nil {
		return err
	}
	if from == to {
		return fmt.Errorf("testbed: oneway: %s to itself", from.Name)
	}
	ctx, cancel := b.ctx()
	defer cancel()
	script := fmt.Sprintf("add rule inet %s partition ip saddr %s drop\n", b.name, from.Addr)
	if err := b.nft(ctx, to, script); err != nil {
		return fmt.Errorf("testbed: oneway: %w", err)
	}
	b.log.Debug("oneway", "from", from.Name, "to", to.Name)
	return nil
}

// Loss drops percent % of every IP packet h receives and, independently,
// percent % of every IP packet it sends, TCP included. A packet between h and
// a healthy host is lost with probability percent; a round trip, about twice
// as often. 0 removes the loss. It replaces an earlier Loss or LossAll on h.
func (b *Bed) Loss(h *Host, percent int) error {
	if err := b.check(h); err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("testbed: loss %d%%: want 0 to 100", percent)
	}
	ctx, cancel := b.ctx()
	defer cancel()
	if err := b.nft(ctx, h, lossScript(b.name, percent, percent)); err != nil {
		return fmt.Errorf("testbed: loss: %w", err)
	}
	b.log.Debug("loss", "host", h.Name, "percent", percent)
	return nil
}

// LossAll makes every packet between two hosts of the bed be lost with
// probability percent (applied once, where it arrives). 0 removes the loss.
// It replaces earlier Loss and LossAll settings.
func (b *Bed) LossAll(percent int) error {
	if err := b.check(); err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("testbed: loss %d%%: want 0 to 100", percent)
	}
	ctx, cancel := b.ctx()
	defer cancel()
	for _, h := range b.Hosts() {
		if err := b.nft(ctx, h, lossScript(b.name, percent, 0)); err != nil {
			return fmt.Errorf("testbed: loss all: %w", err)
		}
	}
	b.log.Debug("loss all", "percent", percent)
	return nil
}

// Bandwidth limits h's link to rate (tc syntax: "1mbit", "500kbit", "2mbps")
// in both directions, with a token bucket filter on each end of its veth.
// "" removes the limit.
func (b *Bed) Bandwidth(h *Host, rate string) error {
	if err := b.check(h); err != nil {
		return err
	}
	ctx, cancel := b.ctx()
	defer cancel()
	if rate == "" {
		return b.unshape(ctx, h)
	}
	bps, err := parseRate(rate)
	if err != nil {
		return fmt.Errorf("testbed: bandwidth: %w", err)
	}
	// A bucket of 20 ms at the rate, and never less than 32 KiB, so that
	// segmentation offload does not starve it.
	burst := max(bps/8/50, 32<<10)
	args := []string{"qdisc", "replace", "dev", "", "root", "tbf", "rate", rate,
		"burst", strconv.FormatInt(burst, 10), "latency", "200ms"}
	for _, end := range [][2]string{{h.Namespace, h.Iface}, {b.bridgeNS, h.port}} {
		args[3] = end[1]
		if _, err := b.run(ctx, "", "tc", append([]string{"-n", end[0]}, args...)...); err != nil {
			return fmt.Errorf("testbed: bandwidth: %w", err)
		}
	}
	b.log.Debug("bandwidth", "host", h.Name, "rate", rate)
	return nil
}

func (b *Bed) unshape(ctx context.Context, h *Host) error {
	for _, end := range [][2]string{{h.Namespace, h.Iface}, {b.bridgeNS, h.port}} {
		out, err := b.run(ctx, "", "tc", "-n", end[0], "qdisc", "del", "dev", end[1], "root")
		if err != nil && !strings.Contains(out, "handle of zero") && !strings.Contains(out, "No such file") {
			return fmt.Errorf("testbed: remove bandwidth limit: %w", err)
		}
	}
	return nil
}

// parseRate reads a tc rate into bits per second.
func parseRate(s string) (int64, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	if i == 0 {
		return 0, fmt.Errorf("rate %q: want a number and a unit, like 1mbit", s)
	}
	num, unit := s, ""
	if i > 0 {
		num, unit = s[:i], strings.ToLower(s[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("rate %q: want a positive number and a unit, like 1mbit", s)
	}
	mult := map[string]float64{
		"": 1, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
		"kibit": 1 << 10, "mibit": 1 << 20, "gibit": 1 << 30,
		"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12,
		"kibps": 8 << 10, "mibps": 8 << 20, "gibps": 8 << 30,
	}
	m, ok := mult[unit]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit %q (bit, kbit, mbit, gbit, bps, kbps, mbps, gbps)", s, unit)
	}
	return int64(v * m), nil
}

// Heal removes every fault: nftables rules, rate limits, and frozen hosts are
// thawed. Processes killed with Kill stay dead.
func (b *Bed) Heal() error {
	if err := b.check(); err != nil {
		return err
	}
	ctx, cancel := b.ctx()
	defer cancel()
	var errs []error
	for _, h := range b.Hosts() {
		script := fmt.Sprintf("flush table inet %[1]s\nflush table netdev %[1]s\n", b.name)
		if err := b.nft(ctx, h, script); err != nil {
			errs = append(errs, fmt.Errorf("testbed: heal: %w", err))
		}
		if err := b.unshape(ctx, h); err != nil {
			errs = append(errs, fmt.Errorf("testbed: heal: %w", err))
		}
		b.mu.Lock()
		frozen := b.frozen[h]
		b.mu.Unlock()
		if frozen {
			if err := b.Thaw(h); err != nil {
				errs = append(errs, fmt.Errorf("testbed: heal: %w", err))
			}
		}
	}
	b.log.Debug("heal")
	return errors.Join(errs...)
}

// Rules returns the nftables rules and qdiscs of h, for a human reading them.
func (b *Bed) Rules(h *Host) (string, error) {
	if err := b.check(h); err != nil {
		return "", err
	}
	ctx, cancel := b.ctx()
	defer cancel()
	var s strings.Builder
	out, err := b.run(ctx, "", "ip", "netns", "exec", h.Namespace, "nft", "list", "ruleset")
	if err != nil {
		return "", err
	}
	s.WriteString(out)
	for _, end := range [][2]string{{h.Namespace, h.Iface}, {b.bridgeNS, h.port}} {
		out, err := b.run(ctx, "", "tc", "-n", end[0], "qdisc", "show", "dev", end[1])
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&s, "qdisc %s/%s: %s", end[0], end[1], out)
	}
	return s.String(), nil
}

func addrSet(hs []*Host) string {
	addrs := make([]string, len(hs))
	for i, h := range hs {
		addrs[i] = h.Addr
	}
	return "{ " + strings.Join(addrs, ", ") + " }"
}

func names(hs []*Host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name
	}
	return out
}
