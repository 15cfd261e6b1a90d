package stack_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// optHdr6 is an options header of n*8 bytes: one experimental option
// (type 0x1e, skipped by a receiver) per 8 bytes, filled with fill.
func optHdr6(n int, fill byte) string {
	h := make([]byte, n*8)
	h[1] = byte(n - 1)
	h[2], h[3] = 0x1e, 4
	for i := 4; i < 8; i++ {
		h[i] = fill
	}
	for i := 8; i < len(h); i += 8 {
		h[i], h[i+1] = 0x1e, 6
		for j := i + 2; j < i+8; j++ {
			h[j] = fill
		}
	}
	return string(h)
}

// ext6Seg is one captured TCP/IPv6 segment as gopacket decodes it.
type ext6Seg struct {
	chain   []gopacket.LayerType // the layers from IPv6 to TCP
	hop     []byte               // the Hop-by-Hop header (nil: none), next header byte zeroed
	dst     []byte               // the Destination Options header
	flags   uint8
	seq     uint32
	payload []byte
	size    int // the IPv6 packet's length
}

// ext6Segs decodes every TCP/IPv6 frame c recorded with gopacket,
// checking the TCP checksum.
func ext6Segs(t *testing.T, c *capLink) []ext6Seg {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ext6Seg
	for _, f := range c.frames {
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		tl, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if ip == nil || tl == nil {
			continue
		}
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("gopacket: %v", el.Error())
		}
		var s ext6Seg
		for _, l := range p.Layers() {
			switch l.LayerType() {
			case layers.LayerTypeEthernet:
				continue
			case layers.LayerTypeIPv6HopByHop:
				s.hop = append([]byte(nil), l.LayerContents()...)
				s.hop[0] = 0
			case layers.LayerTypeIPv6Destination:
				s.dst = append([]byte(nil), l.LayerContents()...)
				s.dst[0] = 0
			}
			s.chain = append(s.chain, l.LayerType())
			if l.LayerType() == layers.LayerTypeTCP {
				break
			}
		}
		// The checksum over the pseudo-header and the TCP bytes.
		tcpb := ip.Payload[len(ip.Payload)-len(tl.LayerContents())-len(tl.LayerPayload()):]
		ps := wire.PseudoHeaderSum6([16]byte(ip.SrcIP.To16()), [16]byte(ip.DstIP.To16()), wire.ProtoTCP, len(tcpb))
		if wire.Fold(wire.Sum(tcpb, ps)) != 0xffff {
			t.Fatalf("segment seq %d: bad TCP checksum", tl.Seq)
		}
		s.flags = tcpb[13]
		s.seq = tl.Seq
		s.payload = tl.LayerPayload()
		s.size = len(ip.Contents) + len(ip.Payload)
		out = append(out, s)
	}
	return out
}

// ext6Pair is two hosts, fd00::1 and fd00::2, on a 1500-byte pipe, each
// link recorded (capLink declares no offloads: super-segments are cut
// by the stack before it).
func ext6Pair(t *testing.T) (a, b *stack.Stack, ca, cb *capLink) {
	ea, eb := link.NewPipe(wire.MAC{2, 0, 0, 0, 0, 1}, wire.MAC{2, 0, 0, 0, 0, 2}, 1500)
	// SRv6 on: a host without it drops every SRH (Linux's seg6_enabled).
	opts := stack.Options{DADTransmits: -1, Seg6Enabled: true}
	a, b = stack.New(opts), stack.New(opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	ca, cb = &capLink{Endpoint: ea}, &capLink{Endpoint: eb}
	a.AddNIC("eth0", ca).AddAddress(netip.MustParsePrefix("fd00::1/64"))
	b.AddNIC("eth0", cb).AddAddress(netip.MustParsePrefix("fd00::2/64"))
	return a, b, ca, cb
}

func setOpt6(t *testing.T, s *socket.Socket, name int, v string) {
	t.Helper()
	if err := s.SetSockOpt(socket.IPPROTO_IPV6, name, v); err != nil {
		t.Fatalf("setsockopt %d: %v", name, err)
	}
}

// ext6Conn connects a socket of a, set up by prepC, to a listener of b
// on [fd00::2]:port set up by prepL.
func ext6Conn(t *testing.T, a, b *stack.Stack, port int, prepL, prepC func(*socket.Socket)) (c, s *socket.Socket) {
	t.Helper()
	ln, _ := socket.New(b).Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	defer ln.Close()
	if err := ln.Bind(socket.Inet6("fd00::2", port)); err != nil {
		t.Fatal(err)
	}
	if prepL != nil {
		prepL(ln)
	}
	ln.Listen(1)
	c, _ = socket.New(a).Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	t.Cleanup(func() { c.Close() })
	if prepC != nil {
		prepC(c)
	}
	c.SetTimeout(30 * time.Second)
	if err := c.Connect(socket.Inet6("fd00::2", port)); err != nil {
		t.Fatal(err)
	}
	ln.SetTimeout(30 * time.Second)
	s, _, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetTimeout(30 * time.Second)
	return c, s
}

func pattern(n int, k byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i>>11) ^ k
	}
	return b
}

func readAll(t *testing.T, s *socket.Socket, n int) []byte {
	t.Helper()
	out := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	for len(out) < n {
		k, err := s.Recv(buf, 0)
		if err != nil || k == 0 {
			t.Fatalf("read after %d of %d bytes: %d %v", len(out), n, k, err)
		}
		out = append(out, buf[:k]...)
	}
	return out
}

// Sticky IPv6 extension headers on a TCP connection between two hosts,
// decoded with gopacket: every segment of the client (SYN, data cut from
// super-segments, ACKs, FIN) carries Hop-by-Hop then Destination
// Options then TCP, the headers as set; its data segments are the MSS
// less all three headers' room (IPV6_RTHDRDSTOPTS counted though not
// sent, as Linux's icsk_ext_hdr_len); its SYN advertises the route's
// MSS. The accepted socket takes its listener's Hop-by-Hop header
// (tcp_v6_syn_recv_sock copies np->opt): its SYN-ACK and every later
// segment carry it, and getsockopt reads it. The data arrives intact.
func TestTCPExt6EverySegment(t *testing.T) {
	a, b, ca, cb := ext6Pair(t)
	hop, dst, rth, lhop := optHdr6(2, 0xaa), optHdr6(1, 0xbb), optHdr6(1, 0xcc), optHdr6(1, 0xdd)
	c, s := ext6Conn(t, a, b, 7100, func(l *socket.Socket) {
		setOpt6(t, l, socket.IPV6_HOPOPTS, lhop)
	}, func(c *socket.Socket) {
		setOpt6(t, c, socket.IPV6_DSTOPTS, dst)
		setOpt6(t, c, socket.IPV6_HOPOPTS, hop)
		setOpt6(t, c, socket.IPV6_RTHDRDSTOPTS, rth)
	})
	for _, g := range []struct {
		s    *socket.Socket
		name int
		want string
	}{{c, socket.IPV6_HOPOPTS, hop}, {c, socket.IPV6_DSTOPTS, dst}, {c, socket.IPV6_RTHDRDSTOPTS, rth},
		{s, socket.IPV6_HOPOPTS, lhop}, {s, socket.IPV6_DSTOPTS, ""}} {
		if v, err := g.s.GetSockOpt(socket.IPPROTO_IPV6, g.name); err != nil || v != g.want {
			t.Fatalf("getsockopt %d: %x %v, want %x", g.name, v, err, g.want)
		}
	}
	const up, down = 300 << 10, 60 << 10
	sent := pattern(up, 1)
	if err := c.SendAll(sent, 0); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, up); !bytes.Equal(got, sent) {
		t.Fatal("client's data arrived changed")
	}
	back := pattern(down, 2)
	if err := s.SendAll(back, 0); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c, down); !bytes.Equal(got, back) {
		t.Fatal("server's data arrived changed")
	}
	c.Shutdown(socket.SHUT_WR)
	if k, err := s.Recv(make([]byte, 1), 0); k != 0 || err != nil {
		t.Fatalf("EOF: %d %v", k, err)
	}
	s.Close()
	if a.Stats().Link.OutGSOSegs.Load() == 0 {
		t.Fatal("no super-segment was cut: the test did not cover them")
	}
	zero := func(h string) []byte { x := []byte(h); x[0] = 0; return x }
	full := []gopacket.LayerType{layers.LayerTypeIPv6, layers.LayerTypeIPv6HopByHop, layers.LayerTypeIPv6Destination, layers.LayerTypeTCP}
	hopOnly := []gopacket.LayerType{layers.LayerTypeIPv6, layers.LayerTypeIPv6HopByHop, layers.LayerTypeTCP}
	for _, side := range []struct {
		name       string
		cl         *capLink
		chain      []gopacket.LayerType
		hop, dst   []byte
		want, maxp int
	}{
		// 1500 less 40 of IPv6, 20 of TCP, 12 of timestamps, and
		// 16+8+8 of headers.
		{"client", ca, full, zero(hop), zero(dst), up, 1500 - 40 - 20 - 12 - 32},
		{"accepted", cb, hopOnly, zero(lhop), nil, down, 1500 - 40 - 20 - 12 - 8},
	} {
		var syn, fin bool
		maxp, data, n := 0, 0, 0
		for _, f := range ext6Segs(t, side.cl) {
			n++
			if len(f.chain) != len(side.chain) {
				t.Fatalf("%s: segment seq %d flags %#x: layers %v, want %v", side.name, f.seq, f.flags, f.chain, side.chain)
			}
			for i := range f.chain {
				if f.chain[i] != side.chain[i] {
					t.Fatalf("%s: segment seq %d: layers %v, want %v", side.name, f.seq, f.chain, side.chain)
				}
			}
			if !bytes.Equal(f.hop, side.hop) || !bytes.Equal(f.dst, side.dst) {
				t.Fatalf("%s: segment seq %d: Hop-by-Hop %x, Destination Options %x; want %x, %x", side.name, f.seq, f.hop, f.dst, side.hop, side.dst)
			}
			if f.size > 1500 {
				t.Fatalf("%s: a packet of %d bytes", side.name, f.size)
			}
			if f.flags&wire.TCPFlagSYN != 0 {
				syn = true
			}
			fin = fin || f.flags&wire.TCPFlagFIN != 0
			maxp = max(maxp, len(f.payload))
			data += len(f.payload)
		}
		if !syn || !fin || maxp != side.maxp || data < side.want {
			t.Fatalf("%s: %d segments, SYN %v, FIN %v, largest payload %d (want %d), %d bytes", side.name, n, syn, fin, maxp, side.maxp, data)
		}
	}
}

// A change on an established connection: the next segment carries the
// new headers and the MSS follows (tcp_sync_mss); before, none; after
// removal, none and the whole MSS again.
func TestTCPExt6SetConnected(t *testing.T) {
	a, b, ca, _ := ext6Pair(t)
	c, s := ext6Conn(t, a, b, 7101, nil, nil)
	const n = 100 << 10
	send := func(k byte) {
		t.Helper()
		d := pattern(n, k)
		if err := c.SendAll(d, 0); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, s, n); !bytes.Equal(got, d) {
			t.Fatal("data changed")
		}
	}
	// A segment a timer sends while the option changes (a tail loss
	// probe after the receiver has read everything) may go either way:
	// the segments seen between the counts taken just before and just
	// after each change are checked only for their size.
	send(1)
	mark1 := len(ext6Segs(t, ca))
	dst := optHdr6(3, 0xee)
	setOpt6(t, c, socket.IPV6_DSTOPTS, dst)
	mark1b := len(ext6Segs(t, ca))
	send(2)
	mark2 := len(ext6Segs(t, ca))
	setOpt6(t, c, socket.IPV6_DSTOPTS, "")
	mark2b := len(ext6Segs(t, ca))
	send(3)
	segs := ext6Segs(t, ca)
	full := 1500 - 40 - 20 - 12
	for i, f := range segs {
		if i >= mark1 && i < mark1b || i >= mark2 && i < mark2b {
			if len(f.payload) > full {
				t.Fatalf("segment %d: %d bytes of payload, over %d", i, len(f.payload), full)
			}
			continue
		}
		with := i >= mark1b && i < mark2
		maxp := full
		if with {
			maxp -= 24
			if f.dst == nil || f.hop != nil || !bytes.Equal(f.dst[1:], []byte(dst)[1:]) {
				t.Fatalf("segment %d (seq %d) after the set: Hop-by-Hop %x, Destination Options %x", i, f.seq, f.hop, f.dst)
			}
		} else if f.dst != nil || f.hop != nil {
			t.Fatalf("segment %d (seq %d) without headers set carries some", i, f.seq)
		}
		if len(f.payload) > maxp {
			t.Fatalf("segment %d: %d bytes of payload, over %d", i, len(f.payload), maxp)
		}
	}
	count := func(from, to, size int) int {
		k := 0
		for _, f := range segs[from:to] {
			if len(f.payload) == size {
				k++
			}
		}
		return k
	}
	if count(mark1b, mark2, full-24) < 10 || count(mark2b, len(segs), full) < 10 || count(0, mark1, full) < 10 {
		t.Fatalf("full-sized segments: %d before, %d with the header, %d after", count(0, mark1, full), count(mark1b, mark2, full-24), count(mark2b, len(segs), full))
	}
}

// On an in-memory link that carries super-segments whole (its offload
// expects the TCP header right after the fixed one), a connection with
// extension headers hands the link no super-segment: the stack cuts
// them, each piece with the headers, and the receiver (taking the
// offloaded path for nothing) gets every byte, dropping nothing.
func TestTCPExt6OffloadLink(t *testing.T) {
	a, b := pair6(t, false)
	c, s := ext6Conn(t, a, b, 7102, nil, func(c *socket.Socket) {
		setOpt6(t, c, socket.IPV6_HOPOPTS, optHdr6(1, 0xaa))
		setOpt6(t, c, socket.IPV6_DSTOPTS, optHdr6(2, 0xbb))
	})
	const n = 4 << 20
	d := pattern(n, 5)
	done := make(chan error, 1)
	go func() { done <- c.SendAll(d, 0) }()
	if got := readAll(t, s, n); !bytes.Equal(got, d) {
		t.Fatal("data changed")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a.Stats().Link.OutGSOFrames.Load() != 0 || a.Stats().Link.OutGSOSegs.Load() == 0 {
		t.Fatalf("super-segments handed to the link %d, cut by the stack %d", a.Stats().Link.OutGSOFrames.Load(), a.Stats().Link.OutGSOSegs.Load())
	}
	if b.Stats().IP6.InDiscards.Load() != 0 || b.TCP.Stats().InErrs != 0 {
		t.Fatal("receiver dropped packets")
	}
}
