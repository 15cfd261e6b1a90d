package socket

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/stack"
)

// cmsgBytes is one control message as Linux lays it out (64-bit host).
func cmsgBytes(level, typ int, data []byte) []byte {
	b := make([]byte, 16+(len(data)+7)&^7)
	binary.NativeEndian.PutUint64(b, uint64(16+len(data)))
	binary.NativeEndian.PutUint32(b[8:], uint32(level))
	binary.NativeEndian.PutUint32(b[12:], uint32(typ))
	copy(b[16:], data)
	return b
}

// An ICMP error read from the queue carries, before IP_RECVERR, the
// IP_PKTINFO and IP_ORIGDSTADDR the socket asked for, describing the
// port unreachable: its destination (ours), the NIC it came in on, and
// as the "port" bytes 2-3 of the payload (ip_cmsg_recv_dstaddr).
func TestRecvErrControlMessages4(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	for _, o := range []int{IP_RECVERR, IP_PKTINFO, IP_RECVORIGDSTADDR} {
		if err := s.SetSockOpt(SOL_IP, o, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SendTo([]byte("payload"), 0, ap(addrB, 9)); err != nil {
		t.Fatal(err)
	}
	waitErr(t, s)
	_, _, _, ee, err := s.RecvErr(make([]byte, 64), 0)
	if err != nil {
		t.Fatal(err)
	}
	nic := p.sa.NICByName("eth0").ID()
	pi := make([]byte, 12)
	binary.NativeEndian.PutUint32(pi, uint32(nic))
	copy(pi[8:], addrA.AsSlice())
	sin := make([]byte, 16)
	binary.NativeEndian.PutUint16(sin, AF_INET)
	copy(sin[2:], "yl")
	copy(sin[4:], addrA.AsSlice())
	want := append(cmsgBytes(SOL_IP, IP_PKTINFO, pi), cmsgBytes(SOL_IP, IP_ORIGDSTADDR, sin)...)
	if !bytes.Equal(ee.Ancillary, want) {
		t.Fatalf("control messages\n%x\nwant\n%x", ee.Ancillary, want)
	}
	if c := ee.Cmsg(); !bytes.HasPrefix(c, want) || len(c) != len(want)+48 {
		t.Fatalf("msg_control %x does not start with them and end in IP_RECVERR", c)
	}
}

// IPv6: IPV6_PKTINFO, IPV6_HOPLIMIT and IPV6_TCLASS describe the
// ICMPv6 packet; IP_PKTINFO alone gives nothing for an ICMPv6 error.
func TestRecvErrControlMessages6(t *testing.T) {
	p := newPair6(t)
	a6 := netip.MustParseAddr("2001:db8::1")
	for _, all := range []bool{true, false} {
		s := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
		if err := s.SetSockOpt(IPPROTO_IPV6, IPV6_RECVERR, 1); err != nil {
			t.Fatal(err)
		}
		opts := []int{IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVTCLASS}
		if !all {
			opts = nil
			if err := s.SetSockOpt(SOL_IP, IP_PKTINFO, 1); err != nil {
				t.Fatal(err)
			}
		}
		for _, o := range opts {
			if err := s.SetSockOpt(IPPROTO_IPV6, o, 1); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.SendTo([]byte("payload"), 0, InetAddr(netip.MustParseAddrPort("[2001:db8::2]:9"))); err != nil {
			t.Fatal(err)
		}
		waitErr(t, s)
		_, _, _, ee, err := s.RecvErr(make([]byte, 64), 0)
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		if all {
			pi := make([]byte, 20)
			copy(pi, a6.AsSlice())
			binary.NativeEndian.PutUint32(pi[16:], uint32(p.sa.NICByName("eth0").ID()))
			hl, tc := make([]byte, 4), make([]byte, 4)
			binary.NativeEndian.PutUint32(hl, 64)
			want = append(cmsgBytes(IPPROTO_IPV6, IPV6_PKTINFO, pi), cmsgBytes(IPPROTO_IPV6, IPV6_HOPLIMIT, hl)...)
			want = append(want, cmsgBytes(IPPROTO_IPV6, IPV6_TCLASS, tc)...)
		}
		if !bytes.Equal(ee.Ancillary, want) {
			t.Fatalf("all %v: control messages\n%x\nwant\n%x", all, ee.Ancillary, want)
		}
		s.Close()
	}
}

// The options: 0 or 1, else EINVAL; IPv4 takes a single byte, IPv6
// wants a whole int; IPV6_RECVERR_RFC4884 on AF_INET is ENOPROTOOPT.
// ee_rfc4884 sits over ee_data as struct sock_ee_data_rfc4884.
func TestRecvErrRFC4884Options(t *testing.T) {
	p := newPair6(t)
	s4 := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	s6 := mustSocket(t, p.a, AF_INET6, SOCK_DGRAM, 0)
	for _, c := range []struct {
		s           *Socket
		level, name int
		v           any
		want        syscall.Errno
		get         int
	}{
		{s4, SOL_IP, IP_RECVERR_RFC4884, 1, 0, 1},
		{s4, SOL_IP, IP_RECVERR_RFC4884, 2, syscall.EINVAL, 1},
		{s4, SOL_IP, IP_RECVERR_RFC4884, -1, syscall.EINVAL, 1},
		{s4, SOL_IP, IP_RECVERR_RFC4884, "", 0, 0},
		{s4, SOL_IP, IP_RECVERR_RFC4884, uint8(1), 0, 1},
		{s4, SOL_IP, IP_RECVERR_RFC4884, "\x00\x00", 0, 0},
		{s4, IPPROTO_IPV6, IPV6_RECVERR_RFC4884, 1, syscall.ENOPROTOOPT, -1},
		{s6, IPPROTO_IPV6, IPV6_RECVERR_RFC4884, 1, 0, 1},
		{s6, IPPROTO_IPV6, IPV6_RECVERR_RFC4884, uint8(0), syscall.EINVAL, 1},
		{s6, IPPROTO_IPV6, IPV6_RECVERR_RFC4884, "\x00\x00", syscall.EINVAL, 1},
		{s6, IPPROTO_IPV6, IPV6_RECVERR_RFC4884, 2, syscall.EINVAL, 1},
		{s6, IPPROTO_IPV6, IPV6_RECVERR_RFC4884, "\x00\x00\x00\x00", 0, 0},
		{s6, SOL_IP, IP_RECVERR_RFC4884, 1, 0, 1},
	} {
		err := c.s.SetSockOpt(c.level, c.name, c.v)
		if c.want == 0 && err != nil || c.want != 0 && err != c.want {
			t.Errorf("set %d/%d=%#v: %v, want %v", c.level, c.name, c.v, err, c.want)
		}
		if c.get < 0 {
			continue
		}
		if v, err := c.s.GetSockOpt(c.level, c.name); err != nil || v != c.get {
			t.Errorf("get %d/%d after %#v: %v %v, want %d", c.level, c.name, c.v, v, err, c.get)
		}
	}
	ee := SockExtendedErr{Errno: syscall.ECONNREFUSED, Origin: SO_EE_ORIGIN_ICMP, Type: 3, Code: 3, RFC4884Len: 100,
		RFC4884Flags: SO_EE_RFC4884_FLAG_INVALID, Level: SOL_IP, CmsgType: IP_RECVERR}
	d := ee.Cmsg()[16:]
	if binary.NativeEndian.Uint16(d[12:]) != 100 || d[14] != 1 || d[15] != 0 {
		t.Fatalf("ee_rfc4884 bytes %x", d[12:16])
	}
}

// A local error (EMSGSIZE under IP_PMTUDISC_DO) carries no IP control
// messages, whatever the socket asked for: ip_recv_error gives them only
// for an error of ICMP origin.
func TestRecvErrLocalNoControlMessages(t *testing.T) {
	p := newPair(t, 1500, stack.Options{})
	s := mustSocket(t, p.a, AF_INET, SOCK_DGRAM, 0)
	for _, o := range []int{IP_RECVERR, IP_PKTINFO, IP_RECVORIGDSTADDR} {
		if err := s.SetSockOpt(SOL_IP, o, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSockOpt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendTo(make([]byte, 3000), 0, ap(addrB, 9)); err != syscall.EMSGSIZE {
		t.Fatalf("send over the MTU: %v", err)
	}
	_, _, _, ee, err := s.RecvErr(nil, 0)
	if err != nil || ee.Origin != SO_EE_ORIGIN_LOCAL || ee.Ancillary != nil {
		t.Fatalf("local error %+v %v", ee, err)
	}
}
