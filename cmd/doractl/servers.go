package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/doractl/doractl/coordinator"
	"github.com/doractl/doractl/daemon"
	"github.com/doractl/doractl/proto"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
)

type logOpts struct {
	level string
	json  bool
}

func (l *logOpts) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&l.level, "log-level", "info", "log level: trace, debug, info, warn, error")
	cmd.Flags().BoolVar(&l.json, "log-json", false, "write logs as JSON lines")
}

func (l *logOpts) logger(name string) (hclog.Logger, error) {
	lvl := hclog.LevelFromString(l.level)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("unknown --log-level %q: use trace, debug, info, warn or error", l.level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: lvl, JSONFormat: l.json, Output: os.Stderr}), nil
}

// clusterKey reads the gossip encryption key: base64 of 16, 24 or 32 bytes.
func clusterKey(flag string) ([]byte, error) {
	if flag == "" {
		flag = os.Getenv("DORACTL_CLUSTER_KEY")
	}
	if flag == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(flag)
	if err != nil {
		return nil, fmt.Errorf("cluster key is not base64: %w", err)
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("cluster key must be 16, 24 or 32 bytes once decoded, got %d", len(k))
}

func newCoordinatorCmd() *cobra.Command {
	cfg := coordinator.DefaultConfig()
	var lo logOpts
	var key, configPath string
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run the coordinator (control API, placement, liveness) in the foreground",
		Long: `Run the coordinator in the foreground: the HTTP control API for the CLI (--control-addr),
the listener daemons connect to (--daemon-addr), and a member of the gossip ring.

SIGINT/SIGTERM shut it down; daemons and their nodes keep running and reconnect when it
comes back (its dataflow registry is kept in --data-dir). Suited to systemd (see deploy/).`,
		Example: "  doractl coordinator\n  doractl coordinator --control-addr 0.0.0.0:6012 --profile flaky",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lo.logger("coordinator")
			if err != nil {
				return err
			}
			if cfg.SecretKey, err = clusterKey(key); err != nil {
				return err
			}
			fc, err := readConfigFile(configPath)
			if err != nil {
				return err
			}
			cfg.GossipOverrides = fc.Gossip
			cfg.Logger = log
			cfg.Version = version
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return coordinator.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ControlAddr, "control-addr", cfg.ControlAddr, "HTTP control API listen address (CLI, /metrics)")
	f.StringVar(&cfg.DaemonAddr, "daemon-addr", cfg.DaemonAddr, "listen address for daemon control links")
	f.StringVar(&cfg.GossipBindAddr, "gossip-addr", cfg.GossipBindAddr, "gossip (memberlist) bind address")
	f.IntVar(&cfg.GossipPort, "gossip-port", cfg.GossipPort, "gossip (memberlist) port, TCP and UDP")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", cfg.AdvertiseAddr, "address other members reach this one at (default: detected)")
	f.StringVar(&cfg.Profile, "profile", cfg.Profile, "liveness profile: lan, wan, local or flaky")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "folder of the dataflow registry (survives restarts)")
	f.StringVar(&cfg.Machine, "machine-id", cfg.Machine, "machine id of this host, for placement of nodes without deploy.machine")
	f.StringVar(&cfg.DefaultMachine, "default-machine", cfg.DefaultMachine, "machine id for nodes without a deploy section (default: the daemon on this host's --machine-id, or the only daemon)")
	f.StringVar(&key, "cluster-key", "", "base64 cluster key, 16/24/32 bytes: encrypts gossip; daemons and control API requests must prove it (env DORACTL_CLUSTER_KEY)")
	f.StringVar(&configPath, "config", "", "YAML config file; its gossip: section overrides --profile settings (see docs/operations.md)")
	lo.add(cmd)
	return cmd
}

func newDaemonCmd() *cobra.Command {
	cfg := daemon.DefaultConfig()
	// The name defaults to daemon-MACHINE once --machine-id is known (daemon.Run fills it).
	cfg.Name = ""
	var lo logOpts
	var key, configPath string
	var labels []string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run a daemon (spawns and stops this machine's nodes) in the foreground",
		Long: `Run this machine's daemon in the foreground. It connects to the coordinator
(--coordinator host[:port], port 53290 by default), joins the gossip ring, spawns the nodes
placed on its machine id, routes their messages and serves their logs. Dynamic nodes
connect to it on --node-addr.

The daemon never exits because the coordinator is gone: its nodes keep running and it
reconnects with backoff. The first SIGINT/SIGTERM stops its nodes (bounded by the grace)
and leaves the ring gracefully; a second one kills them at once.`,
		Example: "  doractl daemon --coordinator 192.168.1.10 --machine-id robot-a --labels gpu=true",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := lo.logger("daemon")
			if err != nil {
				return err
			}
			if cfg.SecretKey, err = clusterKey(key); err != nil {
				return err
			}
			if cfg.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			fc, err := readConfigFile(configPath)
			if err != nil {
				return err
			}
			cfg.GossipOverrides = fc.Gossip
			cfg.CoordinatorAddr = withDefaultPort(cfg.CoordinatorAddr, proto.DefaultDaemonPort)
			cfg.Logger = log
			cfg.Version = version
			ctx, force, stop := twoStageSignals(cmd.Context())
			defer stop()
			cfg.ForceCtx = force
			return daemon.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.CoordinatorAddr, "coordinator", cfg.CoordinatorAddr, "coordinator's daemon address host[:port]")
	f.StringVar(&cfg.Machine, "machine-id", cfg.Machine, "machine id nodes are placed by (deploy.machine)")
	f.StringVar(&cfg.Name, "name", "", "member name in the ring (default daemon-MACHINE, MACHINE from --machine-id)")
	f.StringSliceVar(&labels, "labels", nil, "labels k=v matched by deploy.labels (repeat or comma-separate)")
	f.StringVar(&cfg.ListenAddr, "listen-addr", cfg.ListenAddr, "this daemon's control listener (probes, daemon links)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", cfg.AdvertiseAddr, "address other members reach this daemon at (default: the one it uses to reach the coordinator)")
	f.StringVar(&cfg.NodeListenAddr, "node-addr", cfg.NodeListenAddr, "listener for dynamic nodes (\"\" disables)")
	f.StringVar(&cfg.GossipBindAddr, "gossip-addr", cfg.GossipBindAddr, "gossip (memberlist) bind address")
	f.IntVar(&cfg.GossipPort, "gossip-port", cfg.GossipPort, "gossip port (0 = any free port)")
	f.StringVar(&cfg.Profile, "profile", cfg.Profile, "liveness profile: lan, wan, local or flaky")
	f.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, "folder for node logs, sockets and the node pid file")
	f.StringVar(&key, "cluster-key", "", "base64 cluster key, 16/24/32 bytes: encrypts gossip; daemons and control API requests must prove it (env DORACTL_CLUSTER_KEY)")
	f.StringVar(&configPath, "config", "", "YAML config file; its gossip: section overrides --profile settings (see docs/operations.md)")
	lo.add(cmd)
	return cmd
}

func parseLabels(kv []string) (map[string]string, error) {
	if len(kv) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kv))
	for _, s := range kv {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", s)
		}
		m[k] = v
	}
	return m, nil
}

// withDefaultPort adds port to addr when it has none ("10.0.0.1" -> "10.0.0.1:53290").
func withDefaultPort(addr string, port int) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}
