package tcp

import (
	"testing"
	"unsafe"
)

// The endpoint's size is most of the memory of an idle connection (issue
// 10: a million connections). 1280 is a Go size class, and an object over
// 512 bytes holding pointers carries an 8-byte malloc header: a field that
// pushes the struct past 1272 costs 128 bytes per endpoint (the 1408
// class), so a regression fails here. Rarely used state belongs in a side
// struct made on first use (listenState, undoState).
func TestEndpointSize(t *testing.T) {
	const limit = 1280 - 8
	if n := unsafe.Sizeof(Endpoint{}); n > limit {
		t.Fatalf("Endpoint is %d bytes, over %d (the next size class costs 128 bytes per connection)", n, limit)
	}
}

// CUBIC's state is allocated per connection beside the endpoint; 112 is
// its size class.
func TestCubicSize(t *testing.T) {
	if n := unsafe.Sizeof(cubic{}); n > 112 {
		t.Fatalf("cubic is %d bytes, over 112", n)
	}
}
