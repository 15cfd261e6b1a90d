package netconn

import (
	"testing"
	"unsafe"
)

// A conn is part of the memory of every idle connection (issue 10): 96
// bytes is its Go size class; the deadlines live in a side struct made on
// first use, so a field added here must not push it to the next class.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 96 {
		t.Fatalf("conn is %d bytes, over 96", n)
	}
}
