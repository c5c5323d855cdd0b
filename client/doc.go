// Package client is the Go client of the coordinator's HTTP+JSON control API
// (see proto/api.go). Every call has a deadline: the context's, or a default one, and a
// stop's deadline is a little past the coordinator's own so that a hung coordinator
// cannot hang the caller.
package client
