package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/doractl/doractl/dataflow"
	"github.com/doractl/doractl/proto"
)

// maxRequestBody bounds a request body: a descriptor of dataflow.MaxSize, JSON-escaped.
const maxRequestBody = 2*dataflow.MaxSize + 1<<20

// Handler is the control API (proto/api.go) and /metrics.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	p := proto.APIPrefix
	// Health (version, profile) and /metrics stay open for probes and scrapers; with a
	// cluster key, everything else requires it (anyone who can start a dataflow runs
	// commands on every machine).
	mux.HandleFunc("GET "+p+"/health", s.handleHealth)
	mux.HandleFunc("GET "+p+"/members", s.keyed(s.handleMembers))
	mux.HandleFunc("POST "+p+"/dataflows", s.keyed(s.handleStart))
	mux.HandleFunc("GET "+p+"/dataflows", s.keyed(s.handleList))
	mux.HandleFunc("GET "+p+"/dataflows/{ref}", s.keyed(s.handleGet))
	mux.HandleFunc("POST "+p+"/dataflows/{ref}/stop", s.keyed(s.handleStop))
	mux.HandleFunc("GET "+p+"/dataflows/{ref}/logs/{node}", s.keyed(s.handleLogs))
	mux.HandleFunc("POST "+p+"/destroy", s.keyed(s.handleDestroy))
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newAPIError(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// keyed refuses a request without the cluster key's token when the cluster has a key.
func (s *Server) keyed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if why := proto.CheckAPIToken(s.cfg.SecretKey, r.Header.Get("Authorization")); why != "" {
			s.log.Warn("control API request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", why)
			writeError(w, newAPIError(http.StatusUnauthorized, "%s", why))
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, httpStatus(err), proto.APIError{Error: err.Error()})
}

// readJSON decodes a request body into v; an empty body leaves v as it is.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return newAPIError(http.StatusRequestEntityTooLarge, "request body over the %d MiB limit refused (a descriptor may be at most %d MiB)",
				tooLarge.Limit>>20, dataflow.MaxSize>>20)
		}
		return newAPIError(http.StatusBadRequest, "bad request body: %v", err)
	}
	return nil
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	h := proto.Health{Version: s.cfg.Version, StartedAt: s.startedAt, Daemons: len(s.connected()), ClusterKey: len(s.cfg.SecretKey) > 0}
	if s.cfg.Gossip {
		h.Profile = s.cfg.Profile
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) handleMembers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.members())
}

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	var req proto.APIStartRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	rep, err := s.StartDataflow(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, rep)
}

func (s *Server) handleList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Dataflows())
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	d, err := s.Dataflow(r.PathValue("ref"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) handleStop(w http.ResponseWriter, r *http.Request) {
	var req proto.APIStopRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	rep, err := s.StopDataflow(r.Context(), r.PathValue("ref"), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tail := 0
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, newAPIError(http.StatusBadRequest, "bad tail %q: want a number of lines", v))
			return
		}
		tail = n
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, newAPIError(http.StatusBadRequest, "bad follow %q: want true or false", v))
			return
		}
		follow = b
	}
	t, err := s.resolveLogs(r.PathValue("ref"), r.PathValue("node"))
	if err != nil {
		writeError(w, err)
		return
	}
	fw, ok := w.(flushWriter)
	if !ok {
		writeError(w, fmt.Errorf("response writer cannot stream"))
		return
	}
	wrote := false
	start := func() {
		wrote = true
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		fw.Flush()
	}
	if err := s.streamLogs(r.Context(), t, tail, follow, fw, start); err != nil {
		if !wrote {
			writeError(w, err)
			return
		}
		s.log.Debug("log stream ended with an error", "node", t.node, "error", err)
	}
	if !wrote {
		start()
	}
}

func (s *Server) handleDestroy(w http.ResponseWriter, r *http.Request) {
	var req proto.APIDestroyRequest
	if err := readJSON(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	rep, err := s.destroy(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.destroyed()
}
