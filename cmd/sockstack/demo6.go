package main

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/wire"
)

func init() { demoSteps = append(demoSteps, demoIPv6) }

// demoIPv6 turns IPv6 on for both hosts and repeats the exchanges over
// it: DAD for the link-local and global addresses, neighbour
// solicitation and advertisement, ping6, the TCP echo, and a 4,000-byte
// UDP datagram in IPv6 fragments.
func demoIPv6(w io.Writer, alice, bob *vhost) error {
	fmt.Fprintln(w, "IPv6: alice 2001:db8::1/64 and bob 2001:db8::2/64 beside IPv4 (duplicate address detection first)")
	a6, b6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for _, h := range []struct {
		v *vhost
		a netip.Addr
	}{{alice, a6}, {bob, b6}} {
		if err := h.v.nic.EnableIPv6(); err != nil {
			return err
		}
		if err := h.v.nic.AddAddress(netip.PrefixFrom(h.a, 64)); err != nil {
			return err
		}
	}
	// DAD takes one retransmission time (1 s): wait for both hosts.
	for _, h := range []*vhost{alice, bob} {
		if err := waitAssigned(h.nic, 5*time.Second); err != nil {
			return fmt.Errorf("%s: %w", h.name, err)
		}
		for _, a := range h.nic.Addrs6() {
			fmt.Fprintf(w, "  %s: %v passed DAD\n", h.name, a.Prefix)
		}
	}

	// ping6 bob's link-local address with its scope id.
	var bobLL netip.Addr
	for _, a := range bob.nic.Addrs6() {
		if a.Prefix.Addr().IsLinkLocalUnicast() {
			bobLL = a.Prefix.Addr()
		}
	}
	p, err := alice.net.Socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
	if err != nil {
		return err
	}
	defer p.Close()
	p.SetTimeout(3 * time.Second)
	dst := socket.InetAddr(netip.AddrPortFrom(bobLL.WithZone("eth0"), 0))
	buf := make([]byte, 65536)
	for seq := 1; seq <= 2; seq++ {
		msg := make([]byte, 8+56)
		msg[0] = wire.ICMPv6EchoRequest
		wire.ICMPv6(msg).SetSeq(uint16(seq))
		t0 := time.Now()
		if _, err := p.SendTo(msg, 0, dst); err != nil {
			return err
		}
		for {
			n, from, err := p.RecvFrom(buf, 0)
			if err != nil {
				return fmt.Errorf("no echo reply: %w", err)
			}
			if m := wire.ICMPv6(buf[:n]); n >= 8 && m.Type() == wire.ICMPv6EchoReply && int(m.Seq()) == seq {
				src := fmt.Sprint(from)
				if a, ok := from.(*socket.SockaddrInet); ok { // an address, not addr:port: ICMP has no port
					src = a.AddrPort.Addr().String()
				}
				fmt.Fprintf(w, "  ping6: %d bytes from %s: icmp_seq=%d time=%.3f ms\n", n, src, seq, float64(time.Since(t0).Microseconds())/1000)
				break
			}
		}
	}
	for _, n := range alice.nic.Neighbors6() {
		fmt.Fprintf(w, "  alice's neighbour cache: %v lladdr %v %v\n", n.Addr, n.MAC, n.State)
	}

	if err := demoTCPEcho6(w, alice, bob, b6); err != nil {
		return err
	}

	// 4,000 bytes of UDP: three IPv6 fragments (fragment header, 1448-byte pieces).
	before := alice.st.Stats().IP6.FragCreates.Load()
	n, from, err := sendFragmented(alice, bob, socket.AF_INET6, socket.Inet6("::", 9006), socket.InetAddr(netip.AddrPortFrom(b6, 9006)), "IPv6 datagram")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  alice sent 4000 bytes of UDP as %d IPv6 fragments; bob reassembled %d bytes from %v, identical\n",
		alice.st.Stats().IP6.FragCreates.Load()-before, n, from)
	for _, h := range []*vhost{alice, bob} {
		st := h.st.Stats()
		fmt.Fprintf(w, "  %-5s DAD ok %d  NS out %d  NA out %d  IPv6 in %d out %d  ICMPv6 in %d out %d\n", h.name,
			st.ND.DADSucceeded.Load(), st.ICMP6.OutNeighborSolicits.Load(), st.ICMP6.OutNeighborAdverts.Load(),
			st.IP6.InReceives.Load(), st.IP6.OutRequests.Load(), st.ICMP6.InMsgs.Load(), st.ICMP6.OutMsgs.Load())
	}
	return nil
}

// waitAssigned polls until no address of n is tentative (DAD runs on
// the stack's timers; the demo has nothing to wait on but the clock).
func waitAssigned(n *stack.NIC, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		tentative := false
		for _, a := range n.Addrs6() {
			tentative = tentative || a.Tentative
		}
		if !tentative {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("addresses still tentative after %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// demoTCPEcho6 is the TCP echo exchange over IPv6 to bob's global address.
func demoTCPEcho6(w io.Writer, alice, bob *vhost, b6 netip.Addr) error {
	l, err := bob.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Bind(socket.Inet6("::", 7322)); err != nil {
		return err
	}
	if err := l.Listen(5); err != nil {
		return err
	}
	served := serveEcho(l)
	c, err := alice.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(5 * time.Second)
	if err := c.Connect(socket.InetAddr(netip.AddrPortFrom(b6, 7322))); err != nil {
		return err
	}
	local, _ := c.GetSockName()
	mss, _ := c.GetSockOptInt(socket.SOL_TCP, socket.TCP_MAXSEG)
	fmt.Fprintf(w, "  TCP: alice %v connected to [%v]:7322 (MSS %d)\n", local, b6, mss)
	msg := []byte("Hello, world")
	if err := c.SendAll(msg, 0); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	n, err := c.Recv(b, socket.MSG_WAITALL)
	if err != nil {
		return err
	}
	if string(b[:n]) != string(msg) {
		return fmt.Errorf("echo differs: %q", b[:n])
	}
	fmt.Fprintf(w, "  alice received %q back over IPv6\n", b[:n])
	if err := c.Shutdown(socket.SHUT_WR); err != nil {
		return err
	}
	if n, err := c.Recv(b, 0); n != 0 || err != nil {
		return fmt.Errorf("expected end of stream, got %d bytes, %v", n, err)
	}
	return <-served
}
