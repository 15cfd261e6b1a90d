package socket

import (
	"testing"
	"unsafe"
)

// A Socket is part of the memory of every idle connection (issue 10): 96
// bytes is its Go size class. Rarely used state (deadlines, stored
// options, the Dup reference count) lives in sockExtra, made on first
// use, so a field added here must not push it to the next class.
func TestSocketSize(t *testing.T) {
	if n := unsafe.Sizeof(Socket{}); n > 96 {
		t.Fatalf("Socket is %d bytes, over 96", n)
	}
}
