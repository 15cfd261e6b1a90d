package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestPythonDocsCANExample(t *testing.T) {
	var out bytes.Buffer
	run(&out)
	want := `Received: can_id=100, can_dlc=2, data=b'hi'
  peer got: can_id=100, can_dlc=2, data=b'hi'
  peer got: can_id=1, can_dlc=3, data=b'\x01\x02\x03'
Received: can_id=101, can_dlc=4, data=b'\xde\xad\xbe\xef'
`
	if !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "Received:") != 3 {
		t.Fatalf("output:\n%s", out.String())
	}
}
