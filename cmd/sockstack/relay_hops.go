package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// The relay forwards pings and UDP as a router would (docs/transparent.md,
// "TTL and hop limit"): what a client sent with TTL (hop limit) n leaves
// the relay's host socket with n-1, so a traceroute through the relay
// counts the relay as one hop and the path behind it as it is. One that
// arrived with 1 or less is not forwarded: the client gets an ICMP time
// exceeded in transit from the relay's own address (the stack's, on the
// TUN), as from a router, and it is counted.

// hopExpired applies the rule to a client's datagram b of flow key that
// arrived with TTL hops (0: unknown): true when it must not be
// forwarded, the time exceeded sent (unless --no-icmp) and counted.
// udpLoop asks before it opens a flow: traceroute's probes, each a flow
// of its own, open no kernel socket for the hops that expire here.
func (r *relay) hopExpired(key flowKey, b []byte, hops int) bool {
	if hops != 1 {
		return false
	}
	r.stats.drops.Add(1)
	ic := r.icmp
	if ic == nil {
		return true
	}
	ic.stats.ttlUDP.Add(1)
	if ic.o.off || ic.st.SendUDPTimeExceeded(key.client, key.orig, b) == syscall.EAGAIN {
		ic.stats.ttlRL.Add(1)
	}
	return true
}

// setFlowHops makes the flow's kernel socket send with the client's TTL
// less one (hops 0: unknown, the host's default), set when it changes:
// a flow's datagrams usually share one. The flow's two readers may race
// on a change, so a datagram next to one whose TTL differs may leave
// with the other's.
func (r *relay) setFlowHops(fl *udpFlow, hops int) {
	want := int32(hops - 1)
	if hops <= 1 || fl.hops.Load() == want {
		return
	}
	sc, ok := fl.k.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	v6 := fl.unreach.key.orig.Addr().Is6()
	var serr error
	rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, int(want))
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, int(want))
		}
	})
	if serr == nil {
		fl.hops.Store(want)
	}
}

// echoHops applies the rule to an echo request m from client to orig
// that arrived with TTL hops: false when it must not be relayed (time
// exceeded sent to the client from the stack's address, quoting its
// request; counted).
func (ic *relayICMP) echoHops(client, orig netip.Addr, m []byte, hops int) bool {
	if hops != 1 {
		return true
	}
	ic.stats.ttlEcho.Add(1)
	typ := wire.ICMPTimeExceeded
	if client.Is6() {
		typ = wire.ICMPv6TimeExceeded
	}
	if ic.st.SendEchoError(netip.Addr{}, client, orig, typ, 0, m) == syscall.EAGAIN {
		ic.stats.ttlRL.Add(1)
	}
	return false
}

// sendEcho sends the echo out to dst from the host socket with TTL
// (hop limit) hops as a control message (IP_TTL, IPV6_HOPLIMIT: one
// socket serves every client, so per message), or the socket's default
// for 0. f.oob is the family's scratch: only its requests loop sends.
func (f *echoFamily) sendEcho(out []byte, to net.Addr, hops int) error {
	var oob []byte
	if hops > 0 {
		oob = f.oob[:unix.CmsgSpace(4)]
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		h.SetLen(unix.CmsgLen(4))
		if f.v6 {
			h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT
		} else {
			h.Level, h.Type = unix.IPPROTO_IP, unix.IP_TTL
		}
		binary.NativeEndian.PutUint32(oob[unix.CmsgLen(0):], uint32(hops))
	}
	var err error
	switch c := f.out.(type) {
	case hopsWriter:
		_, err = c.WriteToHops(out, to, hops)
	case *net.UDPConn:
		_, _, err = c.WriteMsgUDP(out, oob, to.(*net.UDPAddr))
	case *net.IPConn:
		_, _, err = c.WriteMsgIP(out, oob, to.(*net.IPAddr))
	default:
		_, err = f.out.WriteTo(out, to)
	}
	return err
}

// hopsWriter is a host socket that takes the TTL with each message
// (the tests' stand-in for the kernel's).
type hopsWriter interface {
	WriteToHops(b []byte, to net.Addr, hops int) (int, error)
}
