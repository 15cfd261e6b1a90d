package stack

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// errorAboutForeign is an ICMP error of typ/code from the peer, to the
// host, quoting a datagram "hi" from foreign:53 to peer:5353 (what a
// transparent socket bound to foreign:53 sends).
func errorAboutForeign(typ, code uint8) []byte {
	in := make([]byte, 20)
	(&wire.IPv4Header{Protocol: wire.ProtoUDP, TotalLen: 30, TTL: 64, Src: foreign, Dst: peerAddr}).Put(in)
	q := append(in, 0, 53, 0x14, 0xe9, 0, 10, 0, 0, 'h', 'i')
	return icmpAbout(peerAddr, typ, code, 0, q)
}

// Errors about a diverted UDP socket's datagrams follow the rule of a
// socket bound to an address of the host: a connected socket without
// IP_RECVERR hears only hard errors (port unreachable), not soft ones
// (host unreachable, time exceeded: sockstack made them its pending
// error); with IP_RECVERR every error is queued and pending, connected
// or not; a source quench reaches no one.
func TestTransparentUDPErrorsAsLocal(t *testing.T) {
	for _, c := range []struct {
		typ, code uint8
		errno     syscall.Errno
		hard      bool
	}{
		{wire.ICMPDestUnreach, wire.ICMPHostUnreach, syscall.EHOSTUNREACH, false},
		{wire.ICMPTimeExceeded, 0, syscall.EHOSTUNREACH, false},
		{wire.ICMPDestUnreach, wire.ICMPPortUnreach, syscall.ECONNREFUSED, true},
		{wire.ICMPSourceQuench, 0, 0, false},
	} {
		for _, conn := range []bool{true, false} {
			for _, on := range []bool{false, true} {
				h, _ := tproxyHarness(t)
				u := h.s.NewDgram(KindUDP, wire.ProtoUDP)
				u.SetTransparent(true)
				if err := u.Bind(netip.AddrPortFrom(foreign, 53)); err != nil {
					t.Fatal(err)
				}
				if conn {
					if err := u.Connect(netip.AddrPortFrom(peerAddr, 5353)); err != nil {
						t.Fatal(err)
					}
				}
				u.SetRecvErr(false, on)
				unmatched := h.s.Stats().ICMP.InUnmatched.Load()
				h.ep.inject(errorAboutForeign(c.typ, c.code))
				if h.s.Stats().ICMP.InUnmatched.Load() != unmatched {
					t.Fatalf("type %d code %d: the error matched no socket", c.typ, c.code)
				}
				heard := c.errno != 0 && (on || c.hard && conn)
				err := u.SoError()
				if heard && !errors.Is(err, c.errno) || !heard && err != nil {
					t.Errorf("type %d code %d, connected %v, IP_RECVERR %v: SO_ERROR %v", c.typ, c.code, conn, on, err)
				}
				wantQ := 0
				if on && c.errno != 0 {
					wantQ = 1
				}
				if n := u.ErrQueueLen(); n != wantQ {
					t.Fatalf("type %d code %d, connected %v, IP_RECVERR %v: %d queued, want %d", c.typ, c.code, conn, on, n, wantQ)
				}
				if wantQ == 1 {
					buf := make([]byte, 16)
					n, _, m, err := u.ReadErr(buf)
					want := ErrQueueMsg{ExtendedErr: ExtendedErr{Errno: c.errno, Origin: EEOriginICMP, Type: c.typ, Code: c.code},
						Offender: peerAddr, Dst: netip.AddrPortFrom(peerAddr, 5353), V4: true}
					if err != nil || string(buf[:n]) != "hi" || m != want {
						t.Errorf("type %d code %d: queued %q %+v %v, want %+v", c.typ, c.code, buf[:n], m, err, want)
					}
				}
				u.Close()
				h.s.Close()
			}
		}
	}
}
