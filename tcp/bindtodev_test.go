package tcp

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// devScript is a script whose segments arrive on an interface and whose
// output records the interface each segment leaves by.
type devScript struct {
	*script
	mu   sync.Mutex
	devs []int
}

func newDevScript(t *testing.T) *devScript {
	d := &devScript{script: newScript(t, Config{})}
	d.h.fail = func(seg *Segment) error {
		d.mu.Lock()
		d.devs = append(d.devs, seg.Dev)
		d.mu.Unlock()
		return nil
	}
	return d
}

// injectOn delivers x as arriving on interface dev.
func (d *devScript) injectOn(dev int, x seg) {
	d.t.Helper()
	b := d.p.NewBatch()
	b.SetInterface(dev, false)
	h := wire.TCPHeader{SrcPort: d.remote.Port(), DstPort: d.local.Port(), Seq: x.seq, Ack: x.ack, Flags: x.flags, Window: x.win, Options: x.opts}
	p := make([]byte, h.Len()+len(x.data))
	n := h.Put(p)
	copy(p[n:], x.data)
	b.HandleSegment(d.remote.Addr(), d.local.Addr(), 0, p)
	b.Flush()
}

// outDev is expectOne with the interface the segment left by.
func (d *devScript) outDev(what string) (captured, int) {
	d.t.Helper()
	c := d.expectOne(what)
	d.mu.Lock()
	defer d.mu.Unlock()
	dev := d.devs[len(d.devs)-1]
	d.devs = d.devs[:0]
	return c, dev
}

// A listener bound to interface 2 resets a SYN from interface 3 and
// answers one from 2 through 2; its child is bound to 2, takes segments
// from 2 only (one from 3 is reset, the connection untouched), and
// sends and retransmits through 2.
func TestBindToDeviceDemux(t *testing.T) {
	d := newDevScript(t)
	l := d.p.NewEndpoint()
	l.SetBindToDevice(2)
	if err := l.Bind(d.local); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	d.injectOn(3, seg{flags: fS, seq: 1000, win: 65535})
	if c, _ := d.outDev("SYN from 3"); c.h.Flags != fR|fA || c.h.Ack != 1001 {
		t.Fatalf("SYN from interface 3: %v, want RST", c)
	}
	d.injectOn(2, seg{flags: fS, seq: 1000, win: 65535})
	sa, dev := d.outDev("SYN from 2")
	if sa.h.Flags != fSA || dev != 2 {
		t.Fatalf("SYN from interface 2: %v through %d, want SYN-ACK through 2", sa, dev)
	}
	iss := sa.h.Seq
	d.injectOn(3, seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	if c, _ := d.outDev("ACK from 3"); c.h.Flags != fR || c.h.Seq != iss+1 {
		t.Fatalf("handshake ACK from interface 3: %v, want RST", c)
	}
	d.injectOn(2, seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	d.expectNone("handshake ACK from 2")
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BindToDevice(); got != 2 {
		t.Fatalf("child bound to %d, want 2", got)
	}
	d.injectOn(3, seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("bad")})
	if r, _ := d.outDev("data from 3"); r.h.Flags != fR || r.h.Seq != iss+1 {
		t.Fatalf("data from interface 3: %v, want RST", r)
	}
	d.injectOn(2, seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("good")})
	if got := string(readAll(c)); got != "good" {
		t.Fatalf("read %q, want only the data from interface 2", got)
	}
	d.out()
	d.mu.Lock()
	d.devs = d.devs[:0]
	d.mu.Unlock()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	d.clk.Advance(5 * time.Second) // past the RTO: a retransmission
	o := d.out()
	d.mu.Lock()
	devs := append([]int(nil), d.devs...)
	d.mu.Unlock()
	if len(o) < 2 || len(devs) != len(o) {
		t.Fatalf("want the data and its retransmission, got %v (devices %v)", o, devs)
	}
	for i, dv := range devs {
		if dv != 2 {
			t.Fatalf("segment %v left through %d, want 2", o[i], dv)
		}
	}
	c.Close()
	l.Close()
}

// Unbinding a connection (SO_BINDTODEVICE "") makes it take segments
// from any interface again; binding it applies to the next segment.
func TestBindToDeviceRebind(t *testing.T) {
	d := newDevScript(t)
	_, c, iss := d.passiveOpen(wire.TCPOptions{})
	c.SetBindToDevice(2)
	d.injectOn(3, seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("a")})
	if r, _ := d.outDev("bound to 2, data from 3"); r.h.Flags != fR {
		t.Fatalf("%v, want RST", r)
	}
	c.SetBindToDevice(0)
	d.injectOn(3, seg{flags: fPA, seq: 1001, ack: iss + 1, win: 65535, data: []byte("b")})
	if got := string(readAll(c)); got != "b" {
		t.Fatalf("unbound: read %q, want b", got)
	}
}

// A connection bound to interface 2 keeps its device in TIME_WAIT, as
// Linux's tw_bound_dev_if: a retransmitted FIN from 2 is acknowledged
// through 2; one from interface 3 does not match the record and, with
// no listener for 3, is reset.
func TestTimeWaitBoundDevice(t *testing.T) {
	d := newDevScript(t)
	l := d.p.NewEndpoint()
	l.SetBindToDevice(2)
	if err := l.Bind(d.local); err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(4); err != nil {
		t.Fatal(err)
	}
	d.injectOn(2, seg{flags: fS, seq: 1000, win: 65535})
	sa, _ := d.outDev("SYN-ACK")
	iss := sa.h.Seq
	d.injectOn(2, seg{flags: fA, seq: 1001, ack: iss + 1, win: 65535})
	c, _, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	c.Close()
	d.outDev("FIN")
	d.injectOn(2, seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535})
	d.outDev("ACK of FIN")
	if !inTimeWait(c) {
		t.Fatal(c.State())
	}
	d.injectOn(2, seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535})
	if a, dev := d.outDev("re-ACK from the record"); a.h.Flags != fA || a.h.Ack != 1002 || dev != 2 {
		t.Fatalf("FIN again from 2: %v through %d, want its ACK through 2", a, dev)
	}
	d.injectOn(3, seg{flags: fFA, seq: 1001, ack: iss + 2, win: 65535})
	if r, _ := d.outDev("FIN from 3"); r.h.Flags&fR == 0 {
		t.Fatalf("FIN from interface 3: %v, want a reset (the record is bound to 2)", r)
	}
	// Binding the port again: the record is in the way of a socket
	// bound to its device or to none, not of one bound to another.
	for _, c := range []struct {
		dev  int
		want error
	}{{0, syscall.EADDRINUSE}, {2, syscall.EADDRINUSE}, {3, nil}} {
		e := d.p.NewEndpoint()
		e.SetBindToDevice(c.dev)
		if err := e.Bind(d.local); err != c.want {
			t.Fatalf("bind on device %d beside the TIME_WAIT record on 2: %v, want %v", c.dev, err, c.want)
		}
		e.Close()
	}
}
