package stack_test

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// capLink records a copy of every frame written to it; it declares no
// offloads, so the stack cuts super-segments in software before it and
// it sees what a wire carries.
type capLink struct {
	link.Endpoint
	mu     sync.Mutex
	frames [][]byte
}

func (c *capLink) WriteFrames(fs [][]byte) (int, error) {
	c.mu.Lock()
	for _, f := range fs {
		c.frames = append(c.frames, append([]byte(nil), f...))
	}
	c.mu.Unlock()
	return c.Endpoint.WriteFrames(fs)
}

// tcpFrame is one captured TCP segment.
type tcpFrame struct {
	opts    []byte
	flags   uint8
	seq     uint32
	payload int
	mss     uint16
}

func (c *capLink) tcp(t *testing.T) []tcpFrame {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []tcpFrame
	for _, f := range c.frames {
		info, err := wire.ParseEthernet(f)
		if err != nil || info.EtherType != wire.EtherTypeIPv4 {
			continue
		}
		ip, err := wire.ParseIPv4(f[info.HeaderLen:])
		if err != nil || ip.Protocol() != wire.ProtoTCP {
			continue
		}
		th, err := wire.ParseTCP(ip.Payload(), ip.PseudoSum(0), true)
		if err != nil {
			t.Fatalf("captured segment: %v", err)
		}
		var o wire.TCPOptions
		wire.ParseTCPOptions(th[wire.TCPMinHeaderLen:th.DataOffset()], &o)
		out = append(out, tcpFrame{opts: append([]byte(nil), ip.Options()...), flags: th.Flags(), seq: th.Seq(),
			payload: len(th.Payload()), mss: o.MSS})
	}
	return out
}

// ipoptsPair is two stacks on a pipe, each link recorded.
func ipoptsPair(t *testing.T) (a, b *stack.Stack, ca, cb *capLink) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	a, b = stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	t.Cleanup(func() { a.Close(); b.Close() })
	ca, cb = &capLink{Endpoint: ea}, &capLink{Endpoint: eb}
	a.AddNIC("eth0", ca).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	b.AddNIC("eth0", cb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	return a, b, ca, cb
}

// optsConn connects a socket of stack a, with IP_OPTIONS opts when not
// empty, to a listener of stack b on 10.0.0.2:port and returns both ends,
// closed when the test ends. A stalled connection fails the test after
// 30 s instead of hanging it.
func optsConn(t *testing.T, a, b *stack.Stack, port int, opts string) (c, s *socket.Socket) {
	t.Helper()
	ln, _ := socket.New(b).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	defer ln.Close()
	if err := ln.Bind(socket.Inet("10.0.0.2", port)); err != nil {
		t.Fatal(err)
	}
	ln.Listen(1)
	c, _ = socket.New(a).Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	t.Cleanup(func() { c.Close() })
	if opts != "" {
		if err := c.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, opts); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Connect(socket.Inet("10.0.0.2", port)); err != nil {
		t.Fatal(err)
	}
	s, _, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c.SetTimeout(30 * time.Second)
	s.SetTimeout(30 * time.Second)
	return c, s
}

func readN(t *testing.T, s *socket.Socket, n int) {
	t.Helper()
	buf := make([]byte, 64<<10)
	for got := 0; got < n; {
		k, err := s.Recv(buf, 0)
		if err != nil || k == 0 {
			t.Fatalf("read after %d of %d bytes: %d %v", got, n, k, err)
		}
		got += k
	}
}

// IP_OPTIONS on a TCP connection between two stacks: every segment the
// client sends carries them (Record Route with the client's address in
// its slot: SYN, data, ACKs, FIN), its data segments are the MSS less
// their 8 bytes, and its SYN advertises the route's MSS as Linux's does.
// The accepted side echoes the SYN's options on every segment it sends
// (Linux's tcp_v4_save_options) and cuts its data to the same size.
func TestTCPIPOptionsEverySegment(t *testing.T) {
	a, b, ca, cb := ipoptsPair(t)
	c, s := optsConn(t, a, b, 7002, "\x07\x07\x04\x00\x00\x00\x00")
	if v, err := s.GetSockOpt(socket.SOL_IP, socket.IP_OPTIONS); err != nil || v != "\x07\x07\x08\x0a\x00\x00\x01\x00" {
		t.Fatalf("accepted socket's IP_OPTIONS %q %v", v, err)
	}
	const up, down = 200 << 10, 50 << 10
	if err := c.SendAll(make([]byte, up), 0); err != nil {
		t.Fatal(err)
	}
	readN(t, s, up)
	if err := s.SendAll(make([]byte, down), 0); err != nil {
		t.Fatal(err)
	}
	readN(t, c, down)
	c.Shutdown(socket.SHUT_WR)
	if k, err := s.Recv(make([]byte, 1), 0); k != 0 || err != nil {
		t.Fatalf("EOF: %d %v", k, err)
	}
	s.Close()
	rr := []byte{7, 7, 8, 10, 0, 0, 1, 0} // the client's address in the one slot
	for _, side := range []struct {
		name string
		cl   *capLink
		want int
	}{{"client", ca, up}, {"accepted", cb, down}} {
		var syn, fin bool
		maxPayload, data := 0, 0
		for _, f := range side.cl.tcp(t) {
			if !bytes.Equal(f.opts, rr) {
				t.Fatalf("%s: segment (flags %#x, %d bytes) with IP options %x, want %x", side.name, f.flags, f.payload, f.opts, rr)
			}
			if f.flags&wire.TCPFlagSYN != 0 {
				syn = true
				if f.mss != 1460 {
					t.Fatalf("%s: SYN advertises MSS %d, want 1460", side.name, f.mss)
				}
			}
			fin = fin || f.flags&wire.TCPFlagFIN != 0
			maxPayload = max(maxPayload, f.payload)
			data += f.payload
		}
		// 1500 less 20 of IP header, 8 of options, 20 of TCP, 12 of timestamps.
		if !syn || !fin || maxPayload != 1440 || data < side.want {
			t.Fatalf("%s: SYN %v, FIN %v, largest payload %d (want 1440), %d bytes", side.name, syn, fin, maxPayload, data)
		}
	}
}

// IP_OPTIONS set on a connected socket: the segments after carry them
// and are cut 8 bytes shorter (Linux's tcp_sync_mss); before, none.
func TestTCPIPOptionsSetConnected(t *testing.T) {
	a, b, ca, _ := ipoptsPair(t)
	c, s := optsConn(t, a, b, 7003, "")
	const n = 100 << 10
	if err := c.SendAll(make([]byte, n), 0); err != nil {
		t.Fatal(err)
	}
	readN(t, s, n)
	// Frames sent before the option is set: a retransmission of that
	// data after it (a loaded machine's timer) carries it, as on Linux.
	k := len(ca.tcp(t))
	if err := c.SetSockOpt(socket.SOL_IP, socket.IP_OPTIONS, "\x01\x01\x01\x01"); err != nil {
		t.Fatal(err)
	}
	if v, err := c.GetSockOpt(socket.SOL_IP, socket.IP_OPTIONS); err != nil || v != "\x01\x01\x01\x01" {
		t.Fatalf("get %q %v", v, err)
	}
	if err := c.SendAll(make([]byte, n), 0); err != nil {
		t.Fatal(err)
	}
	readN(t, s, n)
	fs := ca.tcp(t)
	iss := fs[0].seq
	before, after := 0, 0
	for i, f := range fs {
		if f.payload == 0 {
			continue
		}
		if off := f.seq - iss - 1; off < n {
			if i >= k {
				continue
			}
			if len(f.opts) != 0 {
				t.Fatalf("data before the option was set carries %x", f.opts)
			}
			before = max(before, f.payload)
		} else {
			if !bytes.Equal(f.opts, []byte{1, 1, 1, 1}) {
				t.Fatalf("data after the option was set carries %x", f.opts)
			}
			after = max(after, f.payload)
		}
	}
	if before != 1448 || after != 1444 {
		t.Fatalf("largest payload before %d (want 1448), after %d (want 1444)", before, after)
	}
}

// Over a link that carries super-segments whole (the in-memory pipe), a
// connection with IP_OPTIONS still hands them over: each carries the
// options once in its header, which the link's segmentation (or the
// receiving stack) replicates, and the bytes arrive intact.
func TestTCPIPOptionsSuperSegments(t *testing.T) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	a, b := stack.New(stack.Options{Name: "a"}), stack.New(stack.Options{Name: "b"})
	t.Cleanup(func() { a.Close(); b.Close() })
	a.AddNIC("eth0", ea).AddAddress(netip.MustParsePrefix("10.0.0.1/24"))
	b.AddNIC("eth0", eb).AddAddress(netip.MustParsePrefix("10.0.0.2/24"))
	c, s := optsConn(t, a, b, 7004, "\x07\x0b\x04\x00\x00\x00\x00\x00\x00\x00\x00")
	// The SYN's two slots: the client's address, then the listener's
	// own, filled on receipt; the echo is full.
	if v, err := s.GetSockOpt(socket.SOL_IP, socket.IP_OPTIONS); err != nil || v != "\x07\x0b\x0c\x0a\x00\x00\x01\x0a\x00\x00\x02\x00" {
		t.Fatalf("accepted socket's IP_OPTIONS %x %v", v, err)
	}
	const n = 4 << 20
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*31 + i>>10)
	}
	sent := make(chan error, 1)
	go func() { sent <- c.SendAll(data, 0) }()
	got := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	for len(got) < n {
		k, err := s.Recv(buf, 0)
		if err != nil || k == 0 {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, buf[:k]...)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes differ")
	}
	if a.Stats().Link.OutGSOFrames.Load() == 0 {
		t.Fatal("no super-segment went whole: the case was not exercised")
	}
}
