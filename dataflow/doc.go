// Package dataflow parses and validates dora dataflow descriptors.
//
// A descriptor is the YAML file that lists the nodes of a dataflow, what
// each node runs and how the outputs of one node feed the inputs of
// another. The format follows dora-rs (v0.3 and 1.0 release candidates),
// with the operator runtime left out: nodes using `operator`, `operators`
// or the old `custom` form are rejected.
//
// Parse and ParseFile check the whole file and report every problem they
// find as an *Error carrying the file name, line, column and node id, so
// that a user can jump straight to the offending line.
package dataflow
