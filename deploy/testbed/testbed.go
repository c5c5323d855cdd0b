// Package testbed builds a small network of "hosts" on one Linux machine, one
// network namespace each, joined by a bridge that lives in a namespace of its
// own, and injects faults into it: partitions, one-way drops, random packet
// loss (TCP included), rate limits, frozen and killed processes.
//
// Nothing is created in the root namespace: the bridge, every veth pair, every
// nftables table and every qdisc live inside the bed's namespaces, so deleting
// the namespaces removes the whole bed, and the bed has no route to anything
// outside it.
//
// The bed needs root, iproute2 (ip, tc) and nftables; Available reports
// whether this machine has them.
package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	// netnsDir is where iproute2 keeps the named network namespaces.
	netnsDir = "/run/netns"
	// hostIface is the name of the veth end inside every host namespace.
	hostIface = "eth0"
	// bridgeName is the name of the bridge inside the bridge namespace.
	bridgeName = "br0"
	// defaultTimeout bounds every command the bed runs.
	defaultTimeout = 15 * time.Second
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)

// Config describes a bed.
type Config struct {
	// Name prefixes every namespace ("<name>-br", "<name>-h1", ...) and names
	// the nftables tables. 1 to 6 characters, [a-z][a-z0-9]*, and not an
	// nftables keyword ("ip", "tcp", "drop", ...). Default: "tb" and 4 random
	// hex digits.
	Name string
	// Hosts is the number of hosts, h1..hN. Default 1.
	Hosts int
	// Subnet is the IPv4 network of the bed; host hI gets the I-th address of
	// it. Default "10.231.X.0/24", X derived from Name. The bed is isolated in
	// its own namespaces, so two beds with the same subnet do not interfere.
	Subnet string
	// LogDir receives the output of processes started with Host.Start. Default:
	// a temporary directory made on first use and removed by Close.
	LogDir string
	// Timeout bounds every command the bed runs (ip, nft, tc) and every wait
	// inside Freeze, Kill and Close. Default 15s.
	Timeout time.Duration
	// Logger receives a debug line per command. Default: no logging.
	Logger hclog.Logger
	// Detached marks a bed meant to outlive the process that made it (the
	// testbed command's "up"): CleanupStale leaves it alone. By default the
	// bed records its maker's pid, and once that process is gone CleanupStale
	// removes the bed.
	Detached bool
}

// Bed is a running test bed. Its methods are safe for concurrent use.
type Bed struct {
	name     string
	subnet   netip.Prefix
	bridgeNS string
	timeout  time.Duration
	log      hclog.Logger
	detached bool

	mu        sync.Mutex
	hosts     []*Host
	created   []string // namespaces this Bed deletes on Close
	procs     []*Process
	frozen    map[*Host]bool
	logDir    string
	ownLogDir bool
	seq       int
	closed    bool
}

// Host is one namespace of the bed.
type Host struct {
	// Name is "h1".."hN".
	Name string
	// Addr is the host's IPv4 address, without prefix length.
	Addr string
	// Namespace is the network namespace, "<bed>-h1".
	Namespace string
	// Iface is the host's interface, "eth0".
	Iface string

	port string // the veth end on the bridge, named like the host
	bed  *Bed
}

func (h *Host) String() string { return h.Name + "(" + h.Addr + ")" }

// New builds a bed: the bridge namespace, cfg.Hosts host namespaces with a
// veth each, addresses, loopback up and empty nftables tables. On failure
// everything made so far is removed.
func New(ctx context.Context, cfg Config) (*Bed, error) {
	b, err := newBed(cfg)
	if err != nil {
		return nil, err
	}
	prefix := b.name + "-"
	existing, err := listNamespaces(prefix)
	if err != nil {
		return nil, err
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("testbed: namespaces of a bed named %q exist already (%s): another run uses the name, or remove the leftovers with testbed.Cleanup(%q)",
			b.name, strings.Join(existing, ", "), prefix)
	}
	if err := b.build(ctx); err != nil {
		if cerr := b.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("testbed: cleanup after failed New: %w", cerr))
		}
		return nil, err
	}
	b.log.Debug("bed up", "name", b.name, "subnet", b.subnet, "hosts", len(b.hosts))
	return b, nil
}

func newBed(cfg Config) (*Bed, error) {
	if cfg.Name == "" {
		var r [2]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, fmt.Errorf("testbed: random name: %w", err)
		}
		cfg.Name = "tb" + hex.EncodeToString(r[:])
	}
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("testbed: name %q: want 1 to 6 characters, a lower-case letter then letters or digits", cfg.Name)
	}
	if cfg.Hosts == 0 {
		cfg.Hosts = 1
	}
	if cfg.Hosts < 0 {
		return nil, fmt.Errorf("testbed: hosts %d: must be positive", cfg.Hosts)
	}
	if cfg.Subnet == "" {
		f := fnv.New32a()
		f.Write([]byte(cfg.Name))
		cfg.Subnet = fmt.Sprintf("10.231.%d.0/24", f.Sum32()%256)
	}
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil {
		return nil, fmt.Errorf("testbed: subnet: %w", err)
	}
	subnet = subnet.Masked()
	if !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return nil, fmt.Errorf("testbed: subnet %s: want an IPv4 network of /30 or larger", subnet)
	}
	if room := 1<<(32-subnet.Bits()) - 2; cfg.Hosts > room {
		return nil, fmt.Errorf("testbed: %d hosts do not fit in %s (room for %d)", cfg.Hosts, subnet, room)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	b := &Bed{
		name:     cfg.Name,
		subnet:   subnet,
		bridgeNS: cfg.Name + "-br",
		timeout:  cfg.Timeout,
		log:      cfg.Logger,
		detached: cfg.Detached,
		frozen:   map[*Host]bool{},
		logDir:   cfg.LogDir,
	}
	addr := subnet.Addr()
	for i := 1; i <= cfg.Hosts; i++ {
		addr = addr.Next()
		name := "h" + strconv.Itoa(i)
		b.hosts = append(b.hosts, &Host{
			Name:      name,
			Addr:      addr.String(),
			Namespace: cfg.Name + "-" + name,
			Iface:     hostIface,
			port:      name,
			bed:       b,
		})
	}
	return b, nil
}

func (b *Bed) build(ctx context.Context) error {
	// The bridge namespace is made first and alone: it claims the name. If it
	// exists already, another bed owns the name and nothing here is ours.
	if _, err := b.run(ctx, "", "ip", "netns", "add", b.bridgeNS); err != nil {
		if ctx.Err() != nil {
			// Interrupted by us, not refused: it may exist half-made.
			b.created = append(b.created, b.bridgeNS)
		}
		return err
	}
	b.created = append(b.created, b.bridgeNS)

	var batch strings.Builder
	for _, h := range b.hosts {
		b.created = append(b.created, h.Namespace)
		fmt.Fprintf(&batch, "netns add %s\n", h.Namespace)
	}
	if _, err := b.run(ctx, batch.String(), "ip", "-batch", "-"); err != nil {
		return err
	}

	// Bridge side: the bridge, one veth pair per host, host ends moved out.
	batch.Reset()
	batch.WriteString("link set dev lo up\n")
	fmt.Fprintf(&batch, "link add name %s type bridge\n", bridgeName)
	fmt.Fprintf(&batch, "link set dev %s up\n", bridgeName)
	fmt.Fprintf(&batch, "link set dev %s alias %s\n", bridgeName, b.ownerTag())
	for _, h := range b.hosts {
		fmt.Fprintf(&batch, "link add name %s type veth peer name %s netns %s\n", h.port, hostIface, h.Namespace)
		fmt.Fprintf(&batch, "link set dev %s master %s\n", h.port, bridgeName)
		fmt.Fprintf(&batch, "link set dev %s up\n", h.port)
	}
	if _, err := b.run(ctx, batch.String(), "ip", "-n", b.bridgeNS, "-batch", "-"); err != nil {
		return err
	}

	for _, h := range b.hosts {
		batch.Reset()
		batch.WriteString("link set dev lo up\n")
		fmt.Fprintf(&batch, "addr add %s/%d dev %s\n", h.Addr, b.subnet.Bits(), hostIface)
		fmt.Fprintf(&batch, "link set dev %s up\n", hostIface)
		if _, err := b.run(ctx, batch.String(), "ip", "-n", h.Namespace, "-batch", "-"); err != nil {
			return err
		}
		if err := b.ensureTables(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// Open finds a bed made earlier (by another process) from its namespaces.
// The returned Bed does not know the processes the other process started,
// but Freeze, Thaw and Kill find every process inside a host namespace.
// Its Close removes the whole bed.
func Open(ctx context.Context, name string, cfg Config) (*Bed, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("testbed: name %q: want 1 to 6 characters, a lower-case letter then letters or digits", name)
	}
	cfg.Name = name
	cfg.Hosts = 1 // replaced below
	cfg.Subnet = "10.0.0.0/24"
	b, err := newBed(cfg)
	if err != nil {
		return nil, err
	}
	b.hosts = nil
	nss, err := listNamespaces(name + "-")
	if err != nil {
		return nil, err
	}
	if len(nss) == 0 {
		return nil, fmt.Errorf("testbed: no bed named %q (no namespace %s-*)", name, name)
	}
	b.created = nss
	type numbered struct {
		n int
		h *Host
	}
	var found []numbered
	for _, ns := range nss {
		hn := strings.TrimPrefix(ns, name+"-")
		n, err := strconv.Atoi(strings.TrimPrefix(hn, "h"))
		if !strings.HasPrefix(hn, "h") || err != nil {
			continue
		}
		out, err := b.run(ctx, "", "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", hostIface)
		if err != nil {
			return nil, err
		}
		pfx, err := parseAddr(out)
		if err != nil {
			return nil, fmt.Errorf("testbed: address of %s in %s: %w", hostIface, ns, err)
		}
		b.subnet = pfx.Masked()
		found = append(found, numbered{n, &Host{
			Name: hn, Addr: pfx.Addr().String(), Namespace: ns, Iface: hostIface, port: hn, bed: b,
		}})
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("testbed: bed %q has no host namespaces (found %s)", name, strings.Join(nss, ", "))
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n < found[j].n })
	for _, f := range found {
		b.hosts = append(b.hosts, f.h)
	}
	// A host whose processes are stopped was frozen: Heal thaws it.
	for _, h := range b.hosts {
		pids, err := nsPIDs(h.Namespace)
		if err != nil {
			return nil, err
		}
		for _, pid := range pids {
			if st, ok := procState(pid); ok && st == 'T' {
				b.frozen[h] = true
				break
			}
		}
	}
	return b, nil
}

// parseAddr reads the first "inet A/N" of `ip -4 -o addr show`.
func parseAddr(out string) (netip.Prefix, error) {
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "inet" {
			return netip.ParsePrefix(f[i+1])
		}
	}
	return netip.Prefix{}, fmt.Errorf("no IPv4 address in %q", strings.TrimSpace(out))
}

// Name is the bed's name, the prefix of its namespaces.
func (b *Bed) Name() string { return b.name }

// Subnet is the bed's IPv4 network.
func (b *Bed) Subnet() string { return b.subnet.String() }

// BridgeNamespace is the namespace that holds the bridge.
func (b *Bed) BridgeNamespace() string { return b.bridgeNS }

// Hosts returns the hosts, h1 first.
func (b *Bed) Hosts() []*Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Host(nil), b.hosts...)
}

// Host returns the host with that name ("h2"), or nil.
func (b *Bed) Host(name string) *Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range b.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// LogDir is the directory of the process logs; "" until a process is started
// when Config.LogDir was empty.
func (b *Bed) LogDir() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logDir
}

// Close kills every process of the bed, deletes its namespaces (and with them
// the bridge, veths, nftables tables and qdiscs) and removes the temporary log
// directory. It is idempotent and safe after a failed New.
func (b *Bed) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	created := append([]string(nil), b.created...)
	procs := append([]*Process(nil), b.procs...)
	logDir, ownLogDir := b.logDir, b.ownLogDir
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	var errs []error
	for _, p := range procs {
		p.signalGroup(sigKILL)
	}
	for _, ns := range created {
		if err := killNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range procs {
		if err := p.waitDone(ctx); err != nil {
			errs = append(errs, fmt.Errorf("testbed: close: process %d (%s) on %s did not exit: %w", p.Pid(), p.name, p.Host.Name, err))
		}
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := b.deleteNamespace(ctx, created[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if ownLogDir && logDir != "" {
		if err := os.RemoveAll(logDir); err != nil {
			errs = append(errs, fmt.Errorf("testbed: remove log dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (b *Bed) deleteNamespace(ctx context.Context, ns string) error {
	if _, err := os.Lstat(netnsDir + "/" + ns); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := b.run(ctx, "", "ip", "netns", "delete", ns)
	return err
}

// Cleanup removes what a crashed earlier run left behind: it kills every
// process in, and deletes, each network namespace whose name starts with
// prefix. Use the bed's name and a dash ("tb1f3a-") to remove exactly one bed;
// a shorter prefix can remove beds of other, concurrent runs.
func Cleanup(prefix string) error {
	if prefix == "" {
		return errors.New("testbed: cleanup: empty prefix would match every namespace")
	}
	nss, err := listNamespaces(prefix)
	if err != nil {
		return err
	}
	b := &Bed{timeout: defaultTimeout, log: hclog.NewNullLogger()}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	var errs []error
	for _, ns := range nss {
		if err := killNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range nss {
		if err := b.deleteNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// The bridge's alias records who made the bed: "testbed:owner=PID:START"
// (START is the process's start time, against pid reuse) or
// "testbed:detached".
const tagPrefix = "testbed:"

func (b *Bed) ownerTag() string {
	if b.detached {
		return tagPrefix + "detached"
	}
	pid := os.Getpid()
	return fmt.Sprintf("%sowner=%d:%d", tagPrefix, pid, procStart(pid))
}

// CleanupStale removes the beds with names starting with prefix whose maker
// process has exited without closing them (after a crash or a test timeout),
// and leaves alone the beds of live processes and detached beds. Unlike
// Cleanup it is safe while other runs use beds with the same prefix, so a
// TestMain can call CleanupStale("tb") first.
func CleanupStale(prefix string) error {
	if prefix == "" {
		return errors.New("testbed: cleanup stale: empty prefix")
	}
	nss, err := listNamespaces(prefix)
	if err != nil {
		return err
	}
	b := &Bed{timeout: defaultTimeout, log: hclog.NewNullLogger()}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	var errs []error
	for _, ns := range nss {
		name, ok := strings.CutSuffix(ns, "-br")
		if !ok || !nameRE.MatchString(name) {
			continue
		}
		out, err := b.run(ctx, "", "ip", "-n", ns, "-o", "link", "show", "dev", bridgeName)
		if err != nil {
			continue // half made, or being made right now: not provably stale
		}
		var pid, start int
		i := strings.Index(out, "alias "+tagPrefix+"owner=")
		if i < 0 {
			continue
		}
		if _, err := fmt.Sscanf(out[i:], "alias "+tagPrefix+"owner=%d:%d", &pid, &start); err != nil {
			continue
		}
		if pid > 0 && procStart(pid) == start {
			continue // its maker still runs
		}
		b.log.Debug("stale bed", "name", name, "owner", pid)
		if err := Cleanup(name + "-"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listNamespaces returns the named network namespaces starting with prefix.
func listNamespaces(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("testbed: list namespaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Available reports whether a bed can be built here: nil, or a one-line
// reason fit for t.Skip. It builds and removes a throw-away namespace.
func Available() error {
	if err := available(); err != nil {
		return errors.New(strings.Join(strings.Fields(err.Error()), " "))
	}
	return nil
}

func available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("testbed: needs root (euid %d)", os.Geteuid())
	}
	for _, tool := range []string{"ip", "nft", "tc"} {
		if _, err := lookPath(tool); err != nil {
			return fmt.Errorf("testbed: %s not found (install iproute2 and nftables): %w", tool, err)
		}
	}
	var r [2]byte
	if _, err := rand.Read(r[:]); err != nil {
		return fmt.Errorf("testbed: random name: %w", err)
	}
	name := "tbchk" + hex.EncodeToString(r[:])
	b := &Bed{name: name, timeout: 10 * time.Second, log: hclog.NewNullLogger()}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := b.run(ctx, "", "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("testbed: network namespaces unusable: %w", err)
	}
	defer func() { _ = b.deleteNamespace(context.Background(), name) }()
	probe := &Host{Name: "h1", Namespace: name, Iface: "tbchka"}
	steps := [][]string{
		{"ip", "-n", name, "link", "set", "dev", "lo", "up"},
		{"ip", "-n", name, "link", "add", "name", "tbchka", "type", "veth", "peer", "name", "tbchkb"},
		{"ip", "-n", name, "link", "set", "dev", "tbchka", "up"},
		{"ip", "netns", "exec", name, "tc", "qdisc", "replace", "dev", "tbchka", "root", "tbf", "rate", "1mbit", "burst", "32kb", "latency", "100ms"},
	}
	for _, s := range steps {
		if _, err := b.run(ctx, "", s[0], s[1:]...); err != nil {
			return fmt.Errorf("testbed: unusable here: %w", err)
		}
	}
	script := tablesScript(name, probe.Iface) +
		lossScript(name, 10, 10)
	if _, err := b.run(ctx, script, "ip", "netns", "exec", name, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("testbed: nftables unusable here: %w", err)
	}
	return nil
}
