package conformance

import (
	"time"

	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

// IPV6_RTHDR with a Segment Routing Header (RFC 8754, routing type 4):
// setsockopt's checks (Linux's ipv6_set_opt_hdr with seg6_validate_srh;
// type 0 and, without Mobile IPv6, type 2 refused), getsockopt, on every
// socket kind that takes it, and sendmsg's refusal of a routing header
// as a control message (ip6_datagram_send_ctl takes only type 2). What
// goes on the wire is checked in stack/ext6_srh_test.go and
// interop/srv6_test.go: on ::1 the kernel drops an SRH unless
// seg6_enabled, a sysctl these cases do not change.

// srh6 is an SRH with n segments (all ::1), segments left sl, last entry
// last, and tlv after the segments; hdrlen from the bytes.
func srh6(n, sl, last int, tlv ...byte) []byte {
	h := make([]byte, 8+16*n, 8+16*n+len(tlv))
	for i := 0; i < n; i++ {
		h[8+16*i+15] = 1
	}
	h = append(h, tlv...)
	h[1], h[2], h[3], h[4] = byte(len(h)/8-1), 4, byte(sl), byte(last)
	return h
}

func srv6Cases() []Case {
	ip6 := socket.IPPROTO_IPV6
	set := func(t *T, s sockapi.Sock, v []byte, label string) {
		t.Check(label, s.SetSockOpt(ip6, socket.IPV6_RTHDR, string(v)))
	}
	type0 := append([]byte{0, 2, 0, 1, 0, 0, 0, 0}, make([]byte, 16)...)
	type2 := append([]byte{0, 2, 2, 1, 0, 0, 0, 0}, make([]byte, 16)...)
	var cs []Case
	for _, k := range []struct {
		name    string
		fam, ty int
		pr      int
		root    bool
	}{
		{"udp6", AF_INET6, DGRAM, 0, false},
		{"raw6", AF_INET6, RAW, socket.IPPROTO_UDP, true},
		{"tcp6", AF_INET6, STREAM, 0, false},
		{"udp", AF_INET, DGRAM, 0, false},
	} {
		cs = append(cs, Case{Name: "srv6/opt/" + k.name, Root: k.root, Run: func(t *T) {
			s := t.Socket(k.fam, k.ty, k.pr)
			t.GetBytesOpt("get default", s, ip6, socket.IPV6_RTHDR)
			set(t, s, type0, "type 0")
			set(t, s, type2, "type 2")
			set(t, s, srh6(2, 1, 1), "SRH 2 segments, 1 left")
			t.GetBytesOpt("get", s, ip6, socket.IPV6_RTHDR)
			set(t, s, srh6(3, 0, 2, 4, 6, 0, 0, 0, 0, 0, 0), "SRH 3 segments, 0 left, PadN TLV")
			set(t, s, srh6(3, 0, 2, 4, 2, 0, 0), "SRH 3 segments, 4 bytes of TLV: not a multiple of 8")
			t.GetBytesOpt("get", s, ip6, socket.IPV6_RTHDR)
			set(t, s, append(srh6(1, 0, 0), make([]byte, 8)...), "SRH with 8 bytes more than hdrlen")
			set(t, s, srh6(2, 2, 1), "segments left past last entry")
			set(t, s, srh6(2, 1, 2), "last entry past the segments")
			set(t, s, srh6(1, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0), "TLV past the header")
			set(t, s, srh6(1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0), "Pad1 then a TLV")
			set(t, s, srh6(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), "no segment room")
			t.GetBytesOpt("get after refusals", s, ip6, socket.IPV6_RTHDR)
			set(t, s, nil, "set empty")
			t.GetBytesOpt("get", s, ip6, socket.IPV6_RTHDR)
		}})
	}
	cs = append(cs, Case{Name: "srv6/udp6 sendmsg IPV6_RTHDR", Run: func(t *T) {
		s := t.Socket6(DGRAM)
		to := in6("::1", 9)
		t.SendCtl("IPV6_RTHDR SRH", s, []byte("x"), cmsg(ip6, socket.IPV6_RTHDR, srh6(2, 1, 1)), to)
		t.SendCtl("IPV6_2292RTHDR SRH", s, []byte("x"), cmsg(ip6, socket.IPV6_2292RTHDR, srh6(2, 1, 1)), to)
		t.SendCtl("IPV6_RTHDR type 0", s, []byte("x"), cmsg(ip6, socket.IPV6_RTHDR, type0), to)
		set(t, s, srh6(2, 1, 1), "sticky SRH")
		t.SendCtl("IPV6_RTHDR SRH with a sticky one", s, []byte("x"), cmsg(ip6, socket.IPV6_RTHDR, srh6(2, 1, 1)), to)
	}})
	// A TCP connection over ::1 takes an SRH once connected: the MSS
	// shrinks by its length at once (ipv6_update_options' tcp_sync_mss),
	// getsockopt gives it back; a refused type changes nothing. Nothing
	// is sent with it (the kernel would drop an SRH to ::1 without
	// seg6_enabled).
	cs = append(cs, Case{Name: "srv6/tcp6 connected", Run: func(t *T) {
		l, la := t.listen6(lo6(0), -1)
		c := t.Socket(AF_INET6, STREAM, 0)
		c.SetTimeout(5 * time.Second)
		t.Check("TCP_MAXSEG 1000", c.SetSockOptInt(socket.SOL_TCP, socket.TCP_MAXSEG, 1000))
		if t.Check("connect", c.Connect(la)) != nil {
			return
		}
		srv, _, err := l.Accept()
		t.Must("accept", err)
		t.Track(srv)
		t.GetInt("TCP_MAXSEG", c, socket.SOL_TCP, socket.TCP_MAXSEG)
		set(t, c, srh6(3, 2, 2), "SRH 3 segments")
		t.GetInt("TCP_MAXSEG with the SRH", c, socket.SOL_TCP, socket.TCP_MAXSEG)
		t.GetBytesOpt("get", c, ip6, socket.IPV6_RTHDR)
		set(t, c, type0, "type 0 connected")
		t.GetInt("TCP_MAXSEG after the refusal", c, socket.SOL_TCP, socket.TCP_MAXSEG)
	}})
	return cs
}
