package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/doractl/doractl/cluster"
)

// fileConfig is the YAML file given by --config to `doractl coordinator` and
// `doractl daemon`. It is kept small: only what flags cannot say well.
//
//	gossip:              # overrides of the --profile settings; omitted = the profile's
//	  probe_interval: 1s
//	  probe_timeout: 500ms
//	  indirect_checks: 3
//	  suspicion_mult: 4
type fileConfig struct {
	Gossip cluster.Overrides `yaml:"gossip"`
}

// readConfigFile parses a --config file; unknown keys are errors (with their line).
func readConfigFile(path string) (fileConfig, error) {
	var fc fileConfig
	if path == "" {
		return fc, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("config %s: %s", path, readableYAMLError(err))
	}
	if _, err := cluster.ResolveProfile(cluster.ProfileLAN, fc.Gossip); err != nil {
		return fc, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

// readableYAMLError drops Go type names from yaml.v3's errors: "line 3: field probe_timout
// not found" reads better to a user than "... not found in type cluster.Overrides".
func readableYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	msg = regexp.MustCompile(` in type [\w.*\[\]]+`).ReplaceAllString(msg, "") // the Go type yaml.v3 names
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
}
