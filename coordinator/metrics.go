package coordinator

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the coordinator's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg          *prometheus.Registry
	stopDuration *prometheus.HistogramVec
	pendingOps   prometheus.Gauge
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		stopDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "doractl",
			Subsystem: "coordinator",
			Name:      "stop_duration_seconds",
			Help:      "Time from a stop request to its answer, by result (clean, unclean, unconfirmed).",
			Buckets:   []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 60, 120},
		}, []string{"result"}),
		pendingOps: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "doractl",
			Subsystem: "coordinator",
			Name:      "pending_operations",
			Help:      "Operations (starts, stops, log streams) waiting on daemons.",
		}),
	}
	m.reg.MustRegister(m.stopDuration, m.pendingOps, newStateCollector(s),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// stateCollector reads members, dataflows and link round trips at scrape time.
type stateCollector struct {
	s                                *Server
	members, dataflows, rtt, daemons *prometheus.Desc
}

func newStateCollector(s *Server) *stateCollector {
	return &stateCollector{
		s: s,
		members: prometheus.NewDesc("doractl_coordinator_members",
			"Ring members by verdict (alive, suspect, dead, left).", []string{"status"}, nil),
		dataflows: prometheus.NewDesc("doractl_coordinator_dataflows",
			"Dataflows by status (running, stopping, finished, failed).", []string{"status"}, nil),
		rtt: prometheus.NewDesc("doractl_coordinator_daemon_link_rtt_seconds",
			"Last measured round trip of each connected daemon's control link.", []string{"daemon"}, nil),
		daemons: prometheus.NewDesc("doractl_coordinator_daemons_connected",
			"Daemons with an open control link.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.members
	ch <- c.dataflows
	ch <- c.rtt
	ch <- c.daemons
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	byVerdict := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, m := range c.s.members() {
		byVerdict[m.Status]++
	}
	for v, n := range byVerdict {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n), v)
	}
	byStatus := map[string]int{"running": 0, "stopping": 0, "finished": 0, "failed": 0}
	for st, n := range c.s.reg.counts() {
		byStatus[st] = n
	}
	for st, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(c.dataflows, prometheus.GaugeValue, float64(n), st)
	}
	sessions := c.s.connected()
	ch <- prometheus.MustNewConstMetric(c.daemons, prometheus.GaugeValue, float64(len(sessions)))
	for _, sess := range sessions {
		if rtt := sess.rtt.Load(); rtt > 0 {
			ch <- prometheus.MustNewConstMetric(c.rtt, prometheus.GaugeValue, time.Duration(rtt).Seconds(), sess.info.Name)
		}
	}
}
