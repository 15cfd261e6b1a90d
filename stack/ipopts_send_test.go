package stack

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// IP_OPTIONS compile as Linux's ip_options_compile for a socket, read
// back undone, and go out with this host's address and the time.
func TestCompileIPOptions(t *testing.T) {
	h := newHarness(t, Options{})
	for _, c := range []struct {
		name string
		in   []byte
		err  error
		back []byte
	}{
		{"three NOPs padded", []byte{1, 1, 1}, nil, []byte{1, 1, 1, 0}},
		{"END clears the rest", []byte{1, 0, 0x55, 0x55}, nil, []byte{1, 0, 0, 0}},
		{"RR slot emptied", []byte{7, 11, 4, 9, 9, 9, 9, 8, 8, 8, 8}, nil, []byte{7, 11, 4, 0, 0, 0, 0, 8, 8, 8, 8, 0}},
		{"RR pointer 3", []byte{7, 7, 3, 0, 0, 0, 0}, syscall.EINVAL, nil},
		{"RR cut slot", []byte{7, 9, 8, 1, 2, 3, 4, 0, 0}, syscall.EINVAL, nil},
		{"two RRs", []byte{7, 7, 4, 0, 0, 0, 0, 1, 7, 7, 4, 0, 0, 0, 0}, syscall.EINVAL, nil},
		{"LSRR", []byte{0x83, 11, 4, 127, 0, 0, 2, 127, 0, 0, 3}, nil, []byte{0x83, 11, 4, 127, 0, 0, 2, 127, 0, 0, 3, 0}},
		{"LSRR pointer 8", []byte{0x83, 11, 8, 127, 0, 0, 2, 127, 0, 0, 3}, syscall.EINVAL, nil},
		{"TS overflow 15", []byte{68, 8, 9, 0xf0, 0, 0, 0, 0}, syscall.EINVAL, nil},
		{"CIPSO", []byte{134, 6, 0, 0, 0, 1}, syscall.EINVAL, nil},
		{"41 bytes", make([]byte, 41), syscall.EINVAL, nil},
	} {
		o, err := h.s.CompileIPOptions(c.in)
		if !errors.Is(err, c.err) && (err != nil || c.err != nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
			continue
		}
		if err == nil && !bytes.Equal(o.Value(), c.back) {
			t.Errorf("%s: read back %x, want %x", c.name, o.Value(), c.back)
		}
	}
	// Sent: the source in the RR slot; an LSRR's first hop is where
	// the datagram goes, the final destination its last slot.
	o, _ := h.s.CompileIPOptions([]byte{7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0})
	out := make([]byte, wire.IPv4MaxOptionsLen)
	got := o.build(out, hostAddr, peerAddr, h.clk.Now())
	if want := []byte{7, 11, 8, 10, 0, 0, 1, 0, 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Fatalf("RR sent %x, want %x", got, want)
	}
	o, _ = h.s.CompileIPOptions([]byte{0x83, 11, 4, 10, 0, 0, 7, 10, 0, 0, 8})
	if hop, ok := o.FirstHop(); !ok || hop != netip.MustParseAddr("10.0.0.7") {
		t.Fatalf("first hop %v %v", hop, ok)
	}
	got = o.build(out, hostAddr, peerAddr, h.clk.Now())
	if want := []byte{0x83, 11, 4, 10, 0, 0, 8, 10, 0, 0, 2, 0}; !bytes.Equal(got, want) {
		t.Fatalf("LSRR sent %x, want %x", got, want)
	}
}

// A UDP datagram from a socket with IP_OPTIONS carries them on the wire.
func TestIPOptionsOnTheWire(t *testing.T) {
	h := newHarness(t, Options{})
	e := h.s.NewDgram(KindUDP, 17)
	defer e.Close()
	o, err := h.s.CompileIPOptions([]byte{7, 7, 4, 0, 0, 0, 0})
	if err != nil {
		t.Fatal(err)
	}
	e.SetIPOptions(o)
	if _, err := e.SendTo([]byte("x"), netip.AddrPortFrom(peerAddr, 9), nil); err != nil {
		t.Fatal(err)
	}
	fs := h.ep.take()
	if len(fs) != 1 {
		t.Fatalf("%d frames", len(fs))
	}
	ip := parseOut(t, fs[0])
	if got, want := []byte(ip[20:ip.HeaderLen()]), []byte{7, 7, 8, 10, 0, 0, 1, 0}; !bytes.Equal(got, want) {
		t.Fatalf("options on the wire %x, want %x", got, want)
	}
	if len(ip.Payload()) != 9 {
		t.Fatalf("payload %d bytes", len(ip.Payload()))
	}
}
