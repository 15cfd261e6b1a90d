package attack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

// ping sends one echo request of size bytes from the client's ping socket
// to the victim and waits for the reply.
func ping(t *testing.T, l *lab, size int) error {
	t.Helper()
	s, err := l.CNet.Socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
	must(t, err)
	defer s.Close()
	s.SetTimeout(10 * time.Second)
	msg := make([]byte, 8+size)
	msg[0] = wire.ICMPEcho
	for i := 8; i < len(msg); i++ {
		msg[i] = byte(i)
	}
	if _, err := s.SendTo(msg, 0, socket.Inet(victimIP.String(), 0)); err != nil {
		return err
	}
	b := make([]byte, 65536)
	for {
		n, err := s.Recv(b, 0)
		if err != nil {
			return err
		}
		if n == len(msg) && b[0] == wire.ICMPEchoReply && bytes.Equal(b[8:n], msg[8:]) {
			return nil
		}
	}
}

// TestFragmentFlood: 20,000 fragment sets that never complete, each the
// first 8 bytes of a datagram from its own spoofed source (the smallest
// fragment: the most bookkeeping per byte). What the victim holds stays
// under the reassembly limit, charged at its true size; ordinary pings
// are answered during the flood, and once the partial datagrams expire
// a fragmented ping is reassembled again.
func TestFragmentFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opts := stack.Options{ReasmMemLimit: 1 << 20}
		l := newLab(t, opts)
		sets := scaled(20_000, 1)
		m := begin(t, "fragment flood", l.V)
		maxHeld := 0
		half := make(chan struct{})
		flooded := make(chan struct{})
		go func() {
			defer close(flooded)
			fs := make([][]byte, 0, 64)
			for i := 0; i < sets; i++ {
				src := spoofed(i)
				u := make([]byte, 8)
				wire.PutUDP(u, src.Port(), 7, 1000)
				fs = append(fs, ipFrame(victimMAC, attackerMAC, wire.IPv4Header{Protocol: wire.ProtoUDP,
					Src: src.Addr(), Dst: victimIP, ID: uint16(i), MF: true}, u))
				if len(fs) == cap(fs) || i == sets-1 {
					l.A.send(fs...)
					fs = fs[:0]
					maxHeld = max(maxHeld, l.V.ReasmMemInUse())
				}
				if i == sets/2 {
					close(half)
				}
			}
		}()
		<-half
		if err := ping(t, l, 56); err != nil {
			t.Errorf("ping during the fragment flood: %v", err)
		}
		<-flooded
		synctest.Wait()
		maxHeld = max(maxHeld, l.V.ReasmMemInUse())
		m.end()
		t.Logf("fragment flood: %d incomplete sets; reassembly held at most %d bytes (limit %d)", sets, maxHeld, opts.ReasmMemLimit)
		if maxHeld > opts.ReasmMemLimit {
			t.Errorf("reassembly held %d bytes, limit %d", maxHeld, opts.ReasmMemLimit)
		}
		if m.moved.sum("IP.ReasmMemoryDrops", "IP.ReasmEvictions") == 0 {
			t.Errorf("%d incomplete sets never reached the reassembly limit: fragments are not charged their true size", sets)
		}
		// The limit is meant to bound memory, however small the fragments:
		// each datagram and fragment is charged its buffer and an estimate
		// of its bookkeeping, so the heap may exceed the limit by what the
		// estimates miss, but not by a multiple of it (a payload-only
		// charge let 20,000 eight-byte fragments take 8.6 MiB under 1 MiB).
		g := m.grew()
		t.Logf("fragment flood: heap %.2f times the reassembly limit", float64(g)/float64(opts.ReasmMemLimit))
		if g > 2*int64(opts.ReasmMemLimit) {
			t.Errorf("heap grew by %d bytes holding partial datagrams under a limit of %d", g, opts.ReasmMemLimit)
		}
		// After the reassembly timeout everything is freed and a
		// fragmented ping goes through.
		time.Sleep(l.V.Options().ReasmTimeout + time.Second)
		synctest.Wait()
		if n := l.V.ReasmMemInUse(); n != 0 {
			t.Errorf("reassembly still holds %d bytes after the timeout", n)
		}
		if err := ping(t, l, 4000); err != nil {
			t.Errorf("fragmented ping after the flood: %v", err)
		}
	})
}

// TestUDPFlood: 300,000 empty datagrams, then 212,992 one-byte
// datagrams (as many as bytes in the default buffer), at a socket that
// never reads. The queue is bounded by the datagrams' true size (buffer
// plus per-packet overhead), not their payload, and every refused datagram
// is counted.
func TestUDPFlood(t *testing.T) {
	for _, c := range []struct {
		size, count int
	}{{0, 300_000}, {1, 212_992}} {
		t.Run(fmt.Sprintf("%d-byte", c.size), func(t *testing.T) { udpFlood(t, c.size, c.count) })
	}
}

func udpFlood(t *testing.T, size, count int) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		s, err := l.VNet.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		must(t, err)
		defer s.Close()
		must(t, s.Bind(socket.Inet("0.0.0.0", 7777)))
		rcvbuf, _ := s.GetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF)
		total := scaled(count, 2)
		m := begin(t, fmt.Sprintf("%d-byte UDP flood", size), l.V)
		dst := netip.AddrPortFrom(victimIP, 7777)
		fs := make([][]byte, 0, 256)
		src := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), 4000)
		frame := udpFrame(src, dst, make([]byte, size))
		for i := 0; i < total; i++ {
			fs = append(fs, frame)
			if len(fs) == cap(fs) || i == total-1 {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		m.end()
		// Drain: how many did the socket hold?
		s.SetBlocking(false)
		queued := 0
		b := make([]byte, 16)
		for {
			if _, err := s.Recv(b, 0); err != nil {
				if !errors.Is(err, syscall.EAGAIN) {
					t.Fatal(err)
				}
				break
			}
			queued++
		}
		drops := m.moved.get("UDP.RcvbufErrors")
		t.Logf("%d-byte UDP flood: %d datagrams, %d queued (SO_RCVBUF %d), %d dropped", size, total, queued, rcvbuf, drops)
		if uint64(queued)+drops != uint64(total) {
			t.Errorf("queued %d + dropped %d != sent %d: drops not all counted", queued, drops, total)
		}
		// Linux charges an empty datagram about 768 bytes (its skb's
		// truesize): a 208 KiB buffer holds a few hundred of them. Anything
		// charging at least 256 bytes per datagram is within the spirit.
		if limit := rcvbuf / 256; queued > limit {
			t.Errorf("%d %d-byte datagrams queued in a %d-byte buffer (at most %d at 256 bytes each): payload-only accounting", queued, size, rcvbuf, limit)
		}
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes for one socket's queue", g)
		}
		// The socket still works.
		s.SetBlocking(true)
		s.SetTimeout(10 * time.Second)
		c, err := l.CNet.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		must(t, err)
		defer c.Close()
		if _, err := c.SendTo([]byte("real"), 0, socket.Inet(victimIP.String(), 7777)); err != nil {
			t.Fatal(err)
		}
		n, err := s.Recv(b, 0)
		if err != nil || string(b[:n]) != "real" {
			t.Fatalf("after the flood the socket reads %q, %v", b[:n], err)
		}
	})
}

// TestARPStormAndPoisoning: a storm of unsolicited ARP replies creates
// no neighbour entries (Linux without arp_accept); replies and requests
// about other hosts create none either; a static entry is never
// overwritten; an existing dynamic entry keeps its MAC for the locktime
// and is then updated by a newer answer, as on Linux (the protocol has no
// authentication: the defence is not creating entries, and static
// entries for what matters).
func TestARPStormAndPoisoning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		evil := wire.MAC{2, 0xba, 0xd0, 0, 0, 1}
		entries := func() map[netip.Addr]stack.NeighborInfo {
			m := map[netip.Addr]stack.NeighborInfo{}
			for _, n := range l.VNIC.Neighbors() {
				m[n.Addr] = n
			}
			return m
		}
		before := entries()
		total := scaled(100_000, 2)
		known := 0
		m := begin(t, "ARP reply storm", l.V)
		fs := make([][]byte, 0, 256)
		for i := 0; i < total; i++ {
			a := [4]byte{10, 0, byte(i >> 8), byte(i)}
			if i%2 == 1 {
				a = [4]byte{10, 0, 0, byte(3 + i%200)} // on the victim's subnet
			}
			if _, ok := before[netip.AddrFrom4(a)]; ok {
				known++ // about an existing (static) entry: not unsolicited
			}
			sender := wire.MAC{2, 0xee, 0, byte(i >> 16), byte(i >> 8), byte(i)}
			fs = append(fs, arpFrame(victimMAC, wire.ARPReply, sender, netip.AddrFrom4(a), victimMAC, victimIP))
			if len(fs) == cap(fs) || i == total-1 {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		m.end()
		after := entries()
		t.Logf("ARP reply storm: %d unsolicited replies; neighbour entries %d -> %d", total, len(before), len(after))
		if len(after) != len(before) {
			t.Errorf("unsolicited ARP replies created %d neighbour entries", len(after)-len(before))
		}
		if got := m.moved.get("ARP.InUnsolicited"); got != uint64(total-known) {
			t.Errorf("ARP.InUnsolicited = %d after %d unsolicited replies", got, total-known)
		}
		// Without the defence each entry cost some 16 KiB (1,022 entries:
		// +16 MiB); the bound leaves room for the links' buffer noise.
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes", g)
		}

		// Poisoning the static entries (client, gateway): never changes them.
		l.A.send(arpFrame(victimMAC, wire.ARPReply, evil, clientIP, victimMAC, victimIP),
			arpFrame(wire.BroadcastMAC, wire.ARPRequest, evil, gatewayIP, wire.MAC{}, victimIP),
			arpFrame(wire.BroadcastMAC, wire.ARPRequest, evil, clientIP, wire.MAC{}, clientIP)) // gratuitous
		synctest.Wait()
		for _, a := range []netip.Addr{clientIP, gatewayIP} {
			if e := entries()[a]; e.MAC == evil {
				t.Errorf("static entry for %v overwritten by an ARP packet", a)
			}
		}
		// A request about someone else (target not ours) creates nothing.
		third := netip.MustParseAddr("10.0.0.77")
		l.A.send(arpFrame(wire.BroadcastMAC, wire.ARPRequest, evil, third, wire.MAC{}, netip.MustParseAddr("10.0.0.78")))
		synctest.Wait()
		if _, ok := entries()[third]; ok {
			t.Errorf("an ARP request for another host created an entry for its sender")
		}

		// A dynamic entry made by the victim's own resolution: the owner
		// (the attacker's port stands in for it) answers, the entry is
		// reachable; a later reply with another MAC updates it, as Linux
		// does once its locktime (1 s) has passed.
		owner := wire.MAC{2, 0, 0, 0, 0, 0x77}
		u, err := l.VNet.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		must(t, err)
		defer u.Close()
		l.A.record(true)
		if _, err := u.SendTo([]byte("x"), 0, socket.Inet(third.String(), 9)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		asked := false
		for _, f := range l.A.take() {
			if info, err := wire.ParseEthernet(f); err == nil && info.EtherType == wire.EtherTypeARP {
				if a, err := wire.ParseARP(f[info.HeaderLen:]); err == nil && a.Op == wire.ARPRequest && a.TargetIP == third {
					asked = true
				}
			}
		}
		l.A.record(false)
		if !asked {
			t.Fatalf("the victim did not ask for %v", third)
		}
		l.A.send(arpFrame(victimMAC, wire.ARPReply, owner, third, victimMAC, victimIP))
		synctest.Wait()
		if e := entries()[third]; e.MAC != owner {
			t.Fatalf("solicited reply: entry %+v, want %v", e, owner)
		}
		// Within the locktime (1 s) a different MAC is ignored: the first
		// answer wins a race of answers.
		c0 := snap(l.V)
		l.A.send(arpFrame(victimMAC, wire.ARPReply, evil, third, victimMAC, victimIP))
		synctest.Wait()
		if e := entries()[third]; e.MAC != owner {
			t.Errorf("a conflicting reply within the locktime replaced the entry: %+v", e)
		}
		if snap(l.V).since(c0).get("ARP.LocktimeIgnored") != 1 {
			t.Errorf("the reply ignored within the locktime was not counted")
		}
		time.Sleep(2 * time.Second)
		l.A.send(arpFrame(victimMAC, wire.ARPReply, evil, third, victimMAC, victimIP))
		synctest.Wait()
		if e := entries()[third]; e.MAC != evil {
			t.Errorf("a newer reply for an existing entry: %+v (Linux updates it after locktime)", e)
		}
		t.Logf("ARP: unsolicited replies create nothing; static entries hold; an existing entry ignores other MACs for the locktime, then follows a newer reply (as Linux)")
	})
}

// TestMartiansFromTheWire: packets arriving on eth0 with a loopback
// destination or source, source 0.0.0.0, a broadcast, multicast or class
// E source, or a class E destination are dropped and counted (RFC 1122
// 3.2.1.3, RFC 1812 5.3.7, Linux's martian checks): a UDP socket and a
// TCP listener bound to 127.0.0.1 are not reachable from the LAN, and the
// victim answers none of them.
func TestMartiansFromTheWire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		u, err := l.VNet.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		must(t, err)
		defer u.Close()
		must(t, u.Bind(socket.Inet("127.0.0.1", 5353)))
		u.SetBlocking(false)
		ln, err := l.VNet.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		must(t, err)
		defer ln.Close()
		must(t, ln.Bind(socket.Inet("127.0.0.1", 8080)))
		must(t, ln.Listen(16))
		ln.SetBlocking(false)
		// Anything listening on all addresses for the other cases.
		any, err := l.VNet.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		must(t, err)
		defer any.Close()
		must(t, any.Bind(socket.Inet("0.0.0.0", 5354)))
		any.SetBlocking(false)

		lo := netip.MustParseAddr("127.0.0.1")
		ap := func(a string, port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(a), port) }
		syn := wire.TCPHeader{Seq: 1, Flags: wire.TCPFlagSYN}
		echo := func(src, dst netip.Addr) []byte {
			return ipFrame(victimMAC, attackerMAC, wire.IPv4Header{Protocol: wire.ProtoICMP, Src: src, Dst: dst}, echoRequest(1, 1, []byte("martian")))
		}
		cases := []struct {
			name string
			f    []byte
		}{
			{"UDP to 127.0.0.1", udpFrame(ap("10.0.0.66", 1000), netip.AddrPortFrom(lo, 5353), []byte("loopback only"))},
			{"SYN to 127.0.0.1", tcpFrame(ap("10.0.0.66", 1000), netip.AddrPortFrom(lo, 8080), syn, nil)},
			{"echo to 127.0.0.1", echo(attackerIP, lo)},
			{"UDP from 127.0.0.1", udpFrame(ap("127.0.0.1", 1000), ap("10.0.0.1", 5354), []byte("spoofed loopback"))},
			{"SYN from 127.0.0.1", tcpFrame(ap("127.0.0.1", 1000), netip.AddrPortFrom(lo, 8080), syn, nil)},
			{"echo from 127.0.0.1", echo(lo, victimIP)},
			{"echo from 0.0.0.0", echo(netip.IPv4Unspecified(), victimIP)},
			{"UDP from 0.0.0.0", udpFrame(ap("0.0.0.0", 68), ap("10.0.0.1", 5354), []byte("zero source"))},
			{"echo from 255.255.255.255", echo(netip.MustParseAddr("255.255.255.255"), victimIP)},
			{"echo from 10.0.0.255", echo(netip.MustParseAddr("10.0.0.255"), victimIP)},
			{"echo from 224.0.0.5", echo(netip.MustParseAddr("224.0.0.5"), victimIP)},
			{"echo from 240.0.0.1 (class E)", echo(netip.MustParseAddr("240.0.0.1"), victimIP)},
			{"UDP to 240.0.0.1 (class E)", udpFrame(ap("10.0.0.66", 1000), ap("240.0.0.1", 5354), []byte("class E"))},
		}
		sent0 := l.vtx.all.Load()
		m := begin(t, "martians", l.V)
		for _, c := range cases {
			c0 := snap(l.V)
			tx0 := l.vtx.all.Load()
			l.A.send(c.f)
			synctest.Wait()
			d := snap(l.V).since(c0)
			answered := l.vtx.all.Load() - tx0
			if d.get("IP.InDelivers") != 0 || answered != 0 {
				t.Errorf("%s: delivered (InDelivers +%d) or answered (%d frames): %v", c.name, d.get("IP.InDelivers"), answered, d)
			}
		}
		m.end()
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes", g)
		}
		b := make([]byte, 64)
		if n, err := u.Recv(b, 0); err == nil {
			t.Errorf("the 127.0.0.1 socket received %q from the wire", b[:n])
		}
		if n, err := any.Recv(b, 0); err == nil {
			t.Errorf("the 0.0.0.0 socket received %q from a martian", b[:n])
		}
		if c, _, err := ln.Accept(); err == nil {
			c.Close()
			t.Errorf("the 127.0.0.1 listener accepted a connection from the wire")
		}
		t.Logf("martians: %d packets, %d frames sent by the victim in answer", len(cases), l.vtx.all.Load()-sent0)
	})
}

// TestICMPErrorReflection: datagrams to closed ports, first 200 from one
// spoofed source, then 2,000 from as many sources. The victim's port
// unreachables are limited per destination (icmp_ratelimit: a burst of
// 6, then one a second) and in total (icmp_msgs_per_sec: burst 50), so
// it cannot be used to flood a third party, and every suppressed error is
// counted.
func TestICMPErrorReflection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		var unreach atomic.Int64
		l.vtx.watch(func(f []byte) {
			info, err := wire.ParseEthernet(f)
			if err != nil || info.EtherType != wire.EtherTypeIPv4 {
				return
			}
			if ip, err := wire.ParseIPv4(f[info.HeaderLen:]); err == nil && ip.Protocol() == wire.ProtoICMP && ip.Payload()[0] == wire.ICMPDestUnreach {
				unreach.Add(1)
			}
		})
		dst := netip.AddrPortFrom(victimIP, 9999)
		m := begin(t, "ICMP errors, one source", l.V)
		fs := make([][]byte, 0, 200)
		for i := 0; i < 200; i++ {
			fs = append(fs, udpFrame(netip.AddrPortFrom(netip.MustParseAddr("198.18.7.7"), uint16(1000+i)), dst, []byte("x")))
		}
		l.A.send(fs...)
		synctest.Wait()
		m.end()
		one := unreach.Load()
		t.Logf("200 datagrams to a closed port from one source drew %d port unreachables (Linux: 1-10)", one)
		if one > 10 {
			t.Errorf("%d port unreachables to one destination from a burst of 200", one)
		}
		if got := m.moved.get("ICMP.OutRateLimited"); got+uint64(one) != 200 {
			t.Errorf("sent %d + rate-limited %d != 200", one, got)
		}

		time.Sleep(2 * time.Second)
		unreach.Store(0)
		m = begin(t, "ICMP errors, many sources", l.V)
		fs = fs[:0]
		for i := 0; i < 2000; i++ {
			fs = append(fs, udpFrame(spoofed(i), dst, []byte("x")))
			if len(fs) == cap(fs) {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		m.end()
		many := unreach.Load()
		t.Logf("2,000 datagrams from 2,000 sources drew %d port unreachables", many)
		if many > 50+int64(m.elapse/time.Millisecond) {
			t.Errorf("%d port unreachables from 2,000 sources in %v: the global limit did not hold", many, m.elapse)
		}
	})
}

// TestIGMPQueryFlood: 20,000 general queries at a host in 10 groups. Each
// group has one report timer, started by a query and only ever shortened
// (RFC 2236 3), so the flood costs no memory and draws one report per
// group per response period, not one per query.
func TestIGMPQueryFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		u, err := l.VNet.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
		must(t, err)
		defer u.Close()
		const groups = 10
		for i := 0; i < groups; i++ {
			g := netip.AddrFrom4([4]byte{239, 1, 1, byte(i)})
			must(t, u.SetSockOpt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, socket.IPMreq{Multiaddr: g}))
		}
		time.Sleep(20 * time.Second) // the joins' unsolicited reports are done
		synctest.Wait()
		query := []byte{0x11, 100, 0, 0, 0, 0, 0, 0} // general query, 10 s
		binary.BigEndian.PutUint16(query[2:], wire.Checksum(query))
		frame := ipFrame(wire.MAC{0x01, 0x00, 0x5e, 0, 0, 1}, attackerMAC, wire.IPv4Header{Protocol: wire.ProtoIGMP,
			Src: attackerIP, Dst: netip.MustParseAddr("224.0.0.1"), TTL: 1}, query)
		n := scaled(20_000, 1)
		m := begin(t, "IGMP query flood", l.V)
		fs := make([][]byte, 0, 256)
		for i := 0; i < n; i++ {
			fs = append(fs, frame)
			if len(fs) == cap(fs) || i == n-1 {
				l.A.send(fs...)
				fs = fs[:0]
				// Flooded frames get no back-pressure from the switch: let
				// the ports drain before the next batch.
				synctest.Wait()
			}
		}
		heldTimers := liveHeap()
		time.Sleep(11 * time.Second) // one response period
		synctest.Wait()
		m.end()
		reports := m.moved.get("IGMP.OutReports") + m.moved.get("IGMP.OutV3Reports") // IGMPv3: one report for all groups
		t.Logf("IGMP query flood: %d queries, %d groups: %d reports; heap during the flood %s", n, groups, reports, kib(heldTimers))
		if got := m.moved.get("IGMP.InQueries"); got != uint64(n) {
			t.Errorf("IGMP.InQueries = %d, want %d", got, n)
		}
		// One report per group per period (the flood took one period).
		if reports > 2*groups {
			t.Errorf("%d queries drew %d reports for %d groups", n, reports, groups)
		}
		if g := int64(heldTimers) - int64(m.heap0); g > 2<<20 {
			t.Errorf("heap grew by %d bytes during the query flood", g)
		}
	})
}

// TestARPPendingFlood: SYNs from spoofed sources on the victim's own
// subnet, none of which answers ARP. Every SYN-ACK waits for a resolution
// that never comes; the frames waiting are capped per neighbour
// (unres_qlen, unres_qlen_bytes) and in total, the drops are counted, and
// everything is freed when the resolutions fail.
func TestARPPendingFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		listenTCP(t, l.VNet, 80, 128)
		n := scaled(20_000, 2)
		const silent = 187 // 10.0.0.67 to 10.0.0.253
		opts := l.V.Options()
		m := begin(t, "ARP pending flood", l.V)
		dst := netip.AddrPortFrom(victimIP, 80)
		fs := make([][]byte, 0, 256)
		for i := 0; i < n; i++ {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(67 + i%silent)}), uint16(1024+i))
			fs = append(fs, tcpFrame(src, dst, wire.TCPHeader{Seq: uint32(i), Flags: wire.TCPFlagSYN, Window: 65535}, nil))
			if len(fs) == cap(fs) || i == n-1 {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		held := liveHeap()
		during := snap(l.V).since(m.c0)
		// The resolutions fail after 3 requests 1 s apart.
		time.Sleep(opts.ARPRetryTime*time.Duration(opts.ARPRetries) + time.Second)
		synctest.Wait()
		m.end()
		drops := during.sum("ARP.PendingQueueFull", "ARP.PendingGlobalFull")
		t.Logf("ARP pending flood: %d SYNs from %d silent on-link sources: heap while waiting %s (+%s); %d frames dropped at the pending caps (%d per neighbour, %d total)",
			n, silent, kib(held), kib(held-m.heap0), drops, during.get("ARP.PendingQueueFull"), during.get("ARP.PendingGlobalFull"))
		if drops == 0 {
			t.Errorf("%d frames for %d unresolved neighbours and no pending cap was hit", n, silent)
		}
		// At most ARPPendingTotalBytes wait, plus the neighbour entries and
		// the half-open connections (and up to 3 MiB of the links' buffer
		// noise); uncapped, 32 frames for each of 187 neighbours took 12 MiB.
		if g := int64(held) - int64(m.heap0); g > int64(opts.ARPPendingTotalBytes)+3<<20 {
			t.Errorf("heap grew by %d bytes with frames waiting for ARP (cap %d bytes)", g, opts.ARPPendingTotalBytes)
		}
		if m.moved.get("ARP.PendingResolveFailed") == 0 {
			t.Errorf("no pending frame dropped when resolution failed")
		}
		if g := m.grew(); g > 3<<20 {
			t.Errorf("heap still %d bytes up after the resolutions failed", g)
		}
	})
}

// TestRawAndPacketSocketFlood: a raw ICMP socket and an AF_PACKET socket
// on the victim that never read, and 100,000 small ICMP echo replies
// (which the stack itself does not answer). Both queues are bounded by
// the frames' true size, every refused frame is counted, and the heap
// stays flat.
func TestRawAndPacketSocketFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, stack.Options{})
		raw, err := l.VNet.Socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
		must(t, err)
		defer raw.Close()
		pkt, err := l.VNet.Socket(socket.AF_PACKET, socket.SOCK_RAW, socket.Htons(socket.ETH_P_ALL))
		must(t, err)
		defer pkt.Close()
		must(t, pkt.Bind(&socket.SockaddrPacket{Ifindex: l.VNIC.ID()}))
		rawBuf, _ := raw.GetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF)
		pktBuf, _ := pkt.GetSockOptInt(socket.SOL_SOCKET, socket.SO_RCVBUF)
		reply := echoRequest(1, 1, nil)
		reply[0] = wire.ICMPEchoReply
		wire.ICMPv4(reply).FillChecksum()
		frame := ipFrame(victimMAC, attackerMAC, wire.IPv4Header{Protocol: wire.ProtoICMP, Src: attackerIP, Dst: victimIP}, reply)
		n := scaled(100_000, 2)
		m := begin(t, "raw and packet socket flood", l.V)
		fs := make([][]byte, 0, 256)
		for i := 0; i < n; i++ {
			fs = append(fs, frame)
			if len(fs) == cap(fs) || i == n-1 {
				l.A.send(fs...)
				fs = fs[:0]
			}
		}
		synctest.Wait()
		m.end()
		drain := func(s *socket.Socket) int {
			s.SetBlocking(false)
			b := make([]byte, 2048)
			k := 0
			for {
				if _, err := s.Recv(b, 0); err != nil {
					return k
				}
				k++
			}
		}
		qr, qp := drain(raw), drain(pkt)
		t.Logf("raw and packet socket flood: %d frames; raw socket queued %d (SO_RCVBUF %d), packet socket %d (SO_RCVBUF %d); dropped %d and %d",
			n, qr, rawBuf, qp, pktBuf, m.moved.get("Raw.RcvbufErrors"), m.moved.get("Packet.RcvbufErrors"))
		if limit := rawBuf / 256; qr > limit {
			t.Errorf("raw socket queued %d small datagrams in %d bytes", qr, rawBuf)
		}
		if limit := pktBuf / 256; qp > limit {
			t.Errorf("packet socket queued %d small frames in %d bytes", qp, pktBuf)
		}
		if got := m.moved.get("Raw.RcvbufErrors"); got+uint64(qr) != uint64(n) {
			t.Errorf("raw: queued %d + dropped %d != %d", qr, got, n)
		}
		if got := m.moved.get("Packet.RcvbufErrors"); got+uint64(qp) != uint64(n) {
			t.Errorf("packet: queued %d + dropped %d != %d", qp, got, n)
		}
		if g := m.grew(); g > 2<<20 {
			t.Errorf("heap grew by %d bytes for two sockets' queues", g)
		}
	})
}
