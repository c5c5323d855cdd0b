package main

import (
	"bytes"
	"os"
	"testing"
)

// docs/cli.md is generated from the commands; it must be refreshed when they change.
func TestCLIDocsUpToDate(t *testing.T) {
	var b bytes.Buffer
	if err := writeCLIDocs(&b, newRootCmd()); err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatalf("read docs/cli.md: %v (run make docs)", err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Fatal("docs/cli.md is stale: run make docs")
	}
}
