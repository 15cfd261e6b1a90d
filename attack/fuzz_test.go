package attack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/wire"
)

// FuzzHost throws arbitrary frames at a whole host: eth0 10.0.0.1/24
// with a TCP listener on port 80, an established connection from
// 10.0.0.2:40000 to it, a UDP socket on port 53 that joined 239.1.2.3,
// and a ping socket. The input is a list of records, each
// [op][length: 2 bytes][bytes]: op even delivers the bytes as one frame
// on eth0, op odd advances the host's manual clock by length
// milliseconds (so timers run: retransmissions, reassembly timeouts,
// TIME_WAIT, ARP).
//
// Invariants, checked after each frame against the host's counters:
//   - no panic;
//   - Link.InFrames went up: the frame was seen;
//   - the frame has a link-level outcome: a Link drop counter
//     (InMalformed, InNotForUs, InUnknownEtherType), an ARP "In" counter,
//     or IP.InReceives;
//   - if IP.InReceives moved, an IP-level outcome moved too: an IP "In"
//     counter other than InReceives (the header, source, address and
//     protocol drops, InDiscards, InDelivers), a reassembly counter
//     (Reasm*: held, completed, or dropped), ForwDatagrams or TTLExceeded;
//   - if IP.InDelivers moved, a transport counter moved too: ICMP "In",
//     UDP "In"/NoPorts/RcvbufErrors, IGMP "In", Raw, or TCP.InSegs.
//
// So every frame ends in a counter that names where it went: delivered,
// held, or dropped for a reason. Inside TCP the check stops at InSegs:
// the protocol's own drops are not attributed one by one. Beyond that, after each input the host
// is closed and the goroutines it started must be gone, and every 512
// inputs the live heap must stay under 256 MiB (no state accumulates
// across hosts).
func FuzzHost(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g0 := runtime.NumGoroutine()
		// A hang is a failure too: dump every goroutine.
		dog := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic("FuzzHost: input hung\n" + string(buf[:runtime.Stack(buf, true)]))
		})
		defer dog.Stop()
		h := newFuzzHost(t)
		for len(data) >= 3 {
			op, n := data[0], int(binary.BigEndian.Uint16(data[1:3]))
			data = data[3:]
			if op&1 == 1 {
				h.clk.Advance(time.Duration(n%60000) * time.Millisecond)
				continue
			}
			n = min(n, len(data), 9018)
			frame := data[:n]
			data = data[n:]
			h.deliver(t, frame)
			h.nframes++
		}
		// What the host holds stays within its limits.
		if n, limit := h.s.ReasmMemInUse(), h.s.Options().ReasmMemLimit; n > limit {
			t.Fatalf("reassembly holds %d bytes, limit %d", n, limit)
		}
		if n := len(h.s.TCP.Table()); n > 3+h.nframes {
			t.Fatalf("%d TCP table entries after %d frames", n, h.nframes)
		}
		h.s.Close()
		if runs := fuzzRuns.Add(1); runs%512 == 0 {
			if heap := liveHeap(); heap > 256<<20 {
				t.Fatalf("live heap %d MiB after %d inputs", heap>>20, runs)
			}
		}
		// The loopback's delivery goroutine stops with Close; allow for
		// goroutines of the test framework coming and going.
		if g := runtime.NumGoroutine(); g > g0+2 {
			t.Fatalf("%d goroutines after the host closed, %d before", g, g0)
		}
	})
}

var fuzzRuns atomic.Uint64

// fuzzEP is eth0 of the fuzzed host: frames are delivered synchronously
// by the test, and what the host sends is kept only during setup.
type fuzzEP struct {
	recv  link.Receiver
	stats link.Stats
	mu    sync.Mutex
	keep  bool
	out   [][]byte
}

func (e *fuzzEP) MTU() int               { return 1500 }
func (e *fuzzEP) Kind() link.Kind        { return link.KindEthernet }
func (e *fuzzEP) HardwareAddr() wire.MAC { return victimMAC }
func (e *fuzzEP) Attach(r link.Receiver) { e.recv = r }
func (e *fuzzEP) Stats() *link.Stats     { return &e.stats }
func (e *fuzzEP) Close() error           { return nil }
func (e *fuzzEP) WriteFrames(fs [][]byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.keep {
		for _, f := range fs {
			e.out = append(e.out, append([]byte(nil), f...))
		}
	}
	return len(fs), nil
}

type fuzzHost struct {
	s       *stack.Stack
	ep      *fuzzEP
	clk     *clock.Manual
	iss     uint32 // the victim's ISS on the established connection
	frames  [1][]byte
	nframes int // frames delivered by the fuzz input
}

var (
	fuzzPeer  = netip.AddrPortFrom(clientIP, 40000)
	fuzzLocal = netip.AddrPortFrom(victimIP, 80)
	fuzzGroup = netip.MustParseAddr("239.1.2.3")
)

const fuzzPeerISS = 5000

func newFuzzHost(t testing.TB) *fuzzHost {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	s := stack.New(stack.Options{Name: "fuzzed", Clock: clk, TCP: tcp.Config{Seed: []byte("fuzz")}})
	ep := &fuzzEP{keep: true}
	nic := s.AddNIC("eth0", ep)
	if err := nic.AddAddress(netip.PrefixFrom(victimIP, 24)); err != nil {
		t.Fatal(err)
	}
	nic.SetStatic(clientIP, clientMAC)
	h := &fuzzHost{s: s, ep: ep, clk: clk}
	n := socket.New(s)
	ln, _ := n.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	ln.Bind(socket.Inet("0.0.0.0", 80))
	ln.Listen(16)
	ln.SetBlocking(false)
	u, _ := n.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	u.Bind(socket.Inet("0.0.0.0", 53))
	if err := u.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: fuzzGroup}); err != nil {
		t.Fatal(err)
	}
	n.Socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)

	// The established connection: SYN, SYN-ACK, ACK by hand.
	ep.out = nil
	h.recvFrame(fuzzSeg(wire.TCPHeader{Seq: fuzzPeerISS, Flags: wire.TCPFlagSYN, Window: 65535,
		Options: wire.TCPOptions{HasMSS: true, MSS: 1460}}, nil, 0))
	for _, f := range ep.out {
		if _, seg, ok := parseTCP(f); ok && seg.Flags() == wire.TCPFlagSYN|wire.TCPFlagACK {
			h.iss = seg.Seq()
		}
	}
	if h.iss == 0 {
		t.Fatal("fuzz host: no SYN-ACK")
	}
	h.recvFrame(fuzzSeg(wire.TCPHeader{Seq: fuzzPeerISS + 1, Ack: h.iss + 1, Flags: wire.TCPFlagACK, Window: 65535}, nil, 0))
	if c, _, err := ln.Accept(); err != nil {
		t.Fatalf("fuzz host: connection not established: %v", err)
	} else {
		c.Send([]byte("banner"), 0)
	}
	ep.mu.Lock()
	ep.keep, ep.out = false, nil
	ep.mu.Unlock()
	return h
}

func (h *fuzzHost) recvFrame(f []byte) {
	h.frames[0] = f
	h.ep.recv.DeliverFrames(h.frames[:])
	h.frames[0] = nil
}

// deliver gives the host one frame and checks the accounting invariants.
func (h *fuzzHost) deliver(t *testing.T, f []byte) {
	c0 := snap(h.s)
	h.recvFrame(f)
	d := snap(h.s).since(c0)
	fail := func(what string) {
		t.Fatalf("frame % x: %s; counters moved: %v", f, what, d)
	}
	if d["Link.InFrames"] == 0 {
		fail("Link.InFrames did not move")
	}
	if !d.any(func(k string) bool {
		return k == "Link.InMalformed" || k == "Link.InNotForUs" || k == "Link.InUnknownEtherType" ||
			strings.HasPrefix(k, "ARP.In") || k == "IP.InReceives"
	}) {
		fail("no link-level outcome counted")
	}
	if d["IP.InReceives"] > 0 && !d.any(func(k string) bool {
		return strings.HasPrefix(k, "IP.In") && k != "IP.InReceives" || strings.HasPrefix(k, "IP.Reasm") ||
			k == "IP.ForwDatagrams" || k == "IP.TTLExceeded"
	}) {
		fail("an IP packet with no outcome counted")
	}
	if d["IP.InDelivers"] > 0 && !d.any(func(k string) bool {
		return strings.HasPrefix(k, "ICMP.In") || strings.HasPrefix(k, "UDP.In") || k == "UDP.NoPorts" ||
			k == "UDP.RcvbufErrors" || strings.HasPrefix(k, "IGMP.In") || strings.HasPrefix(k, "Raw.") || k == "TCP.InSegs"
	}) {
		fail("a delivered packet with no transport outcome counted")
	}
}

// any reports whether a moved counter satisfies ok.
func (c counters) any(ok func(string) bool) bool {
	for k, v := range c {
		if v > 0 && ok(k) {
			return true
		}
	}
	return false
}

// fuzzSeg is a frame carrying a TCP segment from the fuzz peer to port 80.
func fuzzSeg(h wire.TCPHeader, data []byte, _ int) []byte {
	f := tcpFrame(fuzzPeer, fuzzLocal, h, data)
	wire.Ethernet(f).SetSrc(clientMAC)
	return f
}

// record encodes one frame as a fuzz input record.
func record(f []byte) []byte {
	r := []byte{0, byte(len(f) >> 8), byte(len(f))}
	return append(r, f...)
}

// tick encodes a clock advance.
func tick(ms int) []byte { return []byte{1, byte(ms >> 8), byte(ms)} }

// fuzzSeeds are valid frames of every kind the host handles, singly and
// in short exchanges.
func fuzzSeeds(tb testing.TB) [][]byte {
	h := newFuzzHost(tb)
	defer h.s.Close()
	iss := h.iss
	peer := func(dst netip.Addr, proto uint8, payload []byte) []byte {
		return ipFrame(victimMAC, clientMAC, wire.IPv4Header{Protocol: proto, Src: clientIP, Dst: dst}, payload)
	}
	udp := func(dst netip.AddrPort, data []byte) []byte {
		f := udpFrame(netip.AddrPortFrom(clientIP, 5000), dst, data)
		wire.Ethernet(f).SetSrc(clientMAC)
		return f
	}
	mcast := udp(netip.AddrPortFrom(fuzzGroup, 53), []byte("to the group"))
	wire.Ethernet(mcast).SetDst(wire.MAC{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03})
	igmpQuery := []byte{0x11, 100, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(igmpQuery[2:], wire.Checksum(igmpQuery))
	query := ipFrame(wire.MAC{0x01, 0x00, 0x5e, 0, 0, 1}, clientMAC, wire.IPv4Header{Protocol: wire.ProtoIGMP, Src: clientIP,
		Dst: netip.MustParseAddr("224.0.0.1"), TTL: 1}, igmpQuery)
	// Two fragments of one echo request.
	echo := echoRequest(7, 1, make([]byte, 1600))
	frag1 := ipFrame(victimMAC, clientMAC, wire.IPv4Header{Protocol: wire.ProtoICMP, Src: clientIP, Dst: victimIP, ID: 99, MF: true}, echo[:1480])
	frag2 := ipFrame(victimMAC, clientMAC, wire.IPv4Header{Protocol: wire.ProtoICMP, Src: clientIP, Dst: victimIP, ID: 99, FragOff: 1480}, echo[1480:])
	ack := wire.TCPHeader{Seq: fuzzPeerISS + 1, Ack: iss + 1, Flags: wire.TCPFlagACK | wire.TCPFlagPSH, Window: 65535}
	data := fuzzSeg(ack, []byte("GET / HTTP/1.0\r\n\r\n"), 0)
	fin := fuzzSeg(wire.TCPHeader{Seq: fuzzPeerISS + 1 + 18, Ack: iss + 1, Flags: wire.TCPFlagACK | wire.TCPFlagFIN, Window: 65535}, nil, 0)
	rst := fuzzSeg(wire.TCPHeader{Seq: fuzzPeerISS + 1, Flags: wire.TCPFlagRST}, nil, 0)
	syn := tcpFrame(netip.AddrPortFrom(clientIP, 40001), fuzzLocal, wire.TCPHeader{Seq: 1, Flags: wire.TCPFlagSYN, Window: 1000,
		Options: wire.TCPOptions{HasMSS: true, MSS: 536, HasTS: true, TSVal: 1, SACKPermitted: true, HasWScale: true, WScale: 7}}, nil)
	wire.Ethernet(syn).SetSrc(clientMAC)

	singles := [][]byte{
		arpFrame(wire.BroadcastMAC, wire.ARPRequest, clientMAC, clientIP, wire.MAC{}, victimIP),
		arpFrame(victimMAC, wire.ARPReply, clientMAC, clientIP, victimMAC, victimIP),
		peer(victimIP, wire.ProtoICMP, echoRequest(1, 1, []byte("ping"))),
		udp(netip.AddrPortFrom(victimIP, 53), []byte("query")),
		udp(netip.AddrPortFrom(victimIP, 54), []byte("closed port")),
		udp(netip.AddrPortFrom(netip.MustParseAddr("10.0.0.255"), 53), []byte("broadcast")),
		mcast, query, frag1, syn, data, fin, rst,
		peer(victimIP, 200, []byte("unknown protocol")),
	}
	var seeds [][]byte
	for _, f := range singles {
		seeds = append(seeds, record(f))
	}
	join := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	seeds = append(seeds,
		join(record(frag1), record(frag2)),
		join(record(frag1), tick(31000), record(frag2)),
		join(record(data), tick(200), record(fin), tick(60000)),
		join(record(syn), tick(1000), tick(3000), record(rst)),
	)
	return seeds
}

// TestFuzzSeedsAccounted runs the seeds through the invariants once more
// and prints what each frame moved, as documentation of the accounting.
func TestFuzzSeedsAccounted(t *testing.T) {
	for i, s := range fuzzSeeds(t) {
		h := newFuzzHost(t)
		var b strings.Builder
		for data := s; len(data) >= 3; {
			op, n := data[0], int(binary.BigEndian.Uint16(data[1:3]))
			data = data[3:]
			if op&1 == 1 {
				h.clk.Advance(time.Duration(n) * time.Millisecond)
				continue
			}
			c0 := snap(h.s)
			h.deliver(t, data[:n])
			fmt.Fprintf(&b, " [%v]", snap(h.s).since(c0))
			data = data[n:]
		}
		h.s.Close()
		t.Logf("seed %d:%s", i, b.String())
	}
}
