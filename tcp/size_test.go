package tcp

import (
	"testing"
	"unsafe"
)

// The endpoint's size is most of the memory of an idle connection (issue
// 10: a million connections). 1280 is a Go size class: a field that pushes
// the struct past it costs 128 bytes per endpoint, so a regression fails
// here. Rarely used state belongs in a side struct made on first use
// (listenState, undoState).
func TestEndpointSize(t *testing.T) {
	const limit = 1280
	if n := unsafe.Sizeof(Endpoint{}); n > limit {
		t.Fatalf("Endpoint is %d bytes, over %d (the next size class costs 128 bytes per connection)", n, limit)
	}
}
