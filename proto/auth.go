package proto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
)

// Registration rejections about the cluster key, as the coordinator words them.
const (
	ErrKeyMismatch   = "cluster key mismatch (this daemon's --cluster-key differs from the coordinator's)"
	ErrKeyRequired   = "coordinator requires a cluster key"
	ErrKeyUnexpected = "this daemon has a cluster key but the coordinator has none"
)

// Control API rejections about the cluster key, as the coordinator words them (HTTP 401).
const (
	ErrAPIKeyRequired = "this coordinator requires the cluster key: set DORACTL_CLUSTER_KEY to the key its --cluster-key was given"
	ErrAPIKeyMismatch = "cluster key mismatch: DORACTL_CLUSTER_KEY differs from the coordinator's --cluster-key"
)

// APIAuthScheme prefixes the API token in the Authorization header.
const APIAuthScheme = "Doractl-Key "

// APIToken is what a control API request carries in its Authorization header (after
// APIAuthScheme) when the cluster has a key: base64 of HMAC-SHA256(key, "doractl api"),
// so the key itself never crosses the network. It is "" without a key.
func APIToken(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("doractl api"))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// CheckAPIToken compares the Authorization header of a request with the cluster's key
// in constant time: "" when it holds (or the cluster has no key), else the reason.
func CheckAPIToken(key []byte, header string) string {
	if len(key) == 0 {
		return ""
	}
	tok, ok := strings.CutPrefix(header, APIAuthScheme)
	switch {
	case !ok || tok == "":
		return ErrAPIKeyRequired
	case !hmac.Equal([]byte(tok), []byte(APIToken(key))):
		return ErrAPIKeyMismatch
	}
	return ""
}

// RegisterProof proves that a registering daemon holds the cluster key:
// HMAC-SHA256(key, "doractl register\x00" + name + "\x00" + bootEpoch). It is nil
// without a key.
func RegisterProof(key []byte, name string, bootEpoch int64) []byte {
	return keyProof(key, "doractl register", name, bootEpoch)
}

// HelloProof proves that a daemon dialing a peer daemon holds the cluster key, as
// RegisterProof does for registrations (with "doractl daemon_hello" as the label).
func HelloProof(key []byte, name string, bootEpoch int64) []byte {
	return keyProof(key, "doractl daemon_hello", name, bootEpoch)
}

// CheckKeyProof compares a received proof with the expected one in constant time and
// returns "" when it holds, else the reason it does not (one of the Err* texts).
func CheckKeyProof(key, proof, want []byte) string {
	switch {
	case len(key) == 0 && len(proof) > 0:
		return ErrKeyUnexpected
	case len(key) == 0:
		return ""
	case len(proof) == 0:
		return ErrKeyRequired
	case !hmac.Equal(proof, want):
		return ErrKeyMismatch
	}
	return ""
}

func keyProof(key []byte, label, name string, bootEpoch int64) []byte {
	if len(key) == 0 {
		return nil
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label + "\x00" + name + "\x00" + strconv.FormatInt(bootEpoch, 10)))
	return m.Sum(nil)
}
