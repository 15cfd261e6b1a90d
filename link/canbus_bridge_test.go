package link

import (
	"net"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

type chanRx struct{ c chan wire.CANFrame }

func (r *chanRx) ReceiveCAN(_ *CANIf, f *wire.CANFrame, local bool, _ any) {
	if !local {
		r.c <- *f
	}
}

func TestCANBridgeJoinsBuses(t *testing.T) {
	bus1 := NewCANBus("one", CANBusOptions{})
	bus2 := NewCANBus("two", CANBusOptions{})
	br2, err := NewCANBridge(bus2, "bridge", "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer br2.Close()
	br1, err := NewCANBridge(bus1, "bridge", "127.0.0.1:0", br2.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer br1.Close()
	n1 := bus1.Attach("ecu1")
	n2 := bus2.Attach("ecu2")
	rx2 := &chanRx{make(chan wire.CANFrame, 16)}
	n2.AddReceiver(rx2)
	rx1 := &chanRx{make(chan wire.CANFrame, 16)}
	n1.AddReceiver(rx1)

	want := []wire.CANFrame{
		{ID: 0x123, Len: 4, Data: [64]byte{0xde, 0xad, 0xbe, 0xef}},
		{ID: 0x1BADCAFE | wire.CANEffFlag, Len: 1, Data: [64]byte{7}},
		{ID: 0x7FF | wire.CANRtrFlag, Len: 2},
		{ID: 0x321, Len: 16, Flags: wire.CANFDFDF | wire.CANFDBRS, Data: [64]byte{1, 2, 3}},
	}
	for i := range want {
		if err := n1.Send(&want[i], nil, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range want {
		select {
		case got := <-rx2.c:
			if got != want[i] {
				t.Fatalf("frame %d: got %+v want %+v", i, got, want[i])
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %d never arrived", i)
		}
	}
	// The reverse direction: bridge 2 learned its peer from the packets.
	back := wire.CANFrame{ID: 0x42, Len: 1, Data: [64]byte{9}}
	_ = n2.Send(&back, nil, false)
	select {
	case got := <-rx1.c:
		if got != back {
			t.Fatalf("back: %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reverse frame never arrived")
	}
	// Nothing echoes back and forth: bus 1 carried its 4 frames and the one
	// from bus 2, bus 2 the same.
	if bus1.Frames.Load() != 5 || bus2.Frames.Load() != 5 {
		t.Fatalf("frames on buses %d %d", bus1.Frames.Load(), bus2.Frames.Load())
	}
	// A malformed packet is counted and dropped.
	c, err := net.Dial("udp", br2.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("ISO11898\x01\x05short"))
	_, _ = c.Write([]byte{0x55})
	valid := make([]byte, wire.CANEthHeaderLen+wire.CANEthFrameLen)
	wire.PutCANEthHeader(valid, 1)
	wire.PutCANEthFrame(valid[wire.CANEthHeaderLen:], &wire.CANFrame{ID: 0x99})
	_, _ = c.Write(valid)
	select {
	case got := <-rx2.c:
		if got.ID != 0x99 {
			t.Fatalf("got %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("frame after malformed packets never arrived")
	}
	if br2.RxMalformed.Load() != 2 {
		t.Fatalf("malformed %d", br2.RxMalformed.Load())
	}
}

func TestCANBridgeHub(t *testing.T) {
	hub := NewCANBus("hub", CANBusOptions{})
	hb, err := NewCANBridge(hub, "bridge", "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	mk := func() (*CANIf, *chanRx, *CANBridge) {
		bus := NewCANBus("leaf", CANBusOptions{})
		br, err := NewCANBridge(bus, "bridge", "127.0.0.1:0", hb.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		n := bus.Attach("ecu")
		rx := &chanRx{make(chan wire.CANFrame, 16)}
		n.AddReceiver(rx)
		return n, rx, br
	}
	a, ra, ba := mk()
	defer ba.Close()
	b, rb, bb := mk()
	defer bb.Close()
	hubRx := &chanRx{make(chan wire.CANFrame, 16)}
	hub.Attach("ecu").AddReceiver(hubRx)
	wait := func(c chan wire.CANFrame, id uint32) {
		t.Helper()
		select {
		case f := <-c:
			if f.ID != id {
				t.Fatalf("got %#x want %#x", f.ID, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("frame %#x never arrived", id)
		}
	}
	// The hub learns b from its first frame, then passes a's frames on.
	_ = b.Send(&wire.CANFrame{ID: 0xB}, nil, false)
	wait(hubRx.c, 0xB)
	_ = a.Send(&wire.CANFrame{ID: 0xA}, nil, false)
	wait(hubRx.c, 0xA)
	wait(rb.c, 0xA)
	_ = b.Send(&wire.CANFrame{ID: 0xB2}, nil, false)
	wait(ra.c, 0xB2)
	if len(hb.Peers()) != 2 {
		t.Fatalf("hub peers %v", hb.Peers())
	}
}

func TestCANBridgePeerLimit(t *testing.T) {
	bus := NewCANBus("b", CANBusOptions{})
	br, err := NewCANBridge(bus, "bridge", "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	rx := &chanRx{make(chan wire.CANFrame, 64)}
	bus.Attach("ecu").AddReceiver(rx)
	pkt := make([]byte, wire.CANEthHeaderLen+wire.CANEthFrameLen)
	wire.PutCANEthHeader(pkt, 1)
	wire.PutCANEthFrame(pkt[wire.CANEthHeaderLen:], &wire.CANFrame{ID: 1})
	for i := range MaxCANBridgePeers + 2 {
		c, err := net.Dial("udp", br.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
		select {
		case <-rx.c:
		case <-time.After(10 * time.Second):
			t.Fatalf("packet %d never arrived", i)
		}
	}
	if len(br.Peers()) != MaxCANBridgePeers || br.PeersFull.Load() != 2 {
		t.Fatalf("peers %d, refused %d", len(br.Peers()), br.PeersFull.Load())
	}
}
