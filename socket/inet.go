package socket

import (
	"errors"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/stack"
	"github.com/sockstack/sockstack/tcp"
	"github.com/sockstack/sockstack/waiter"
)

// newInet picks the endpoint for an AF_INET socket, with Linux's errors
// for impossible combinations.
func (n *Net) newInet(typ, proto int) (endpoint, int, error) {
	switch typ {
	case SOCK_STREAM:
		if proto == 0 {
			proto = IPPROTO_TCP
		}
		if proto != IPPROTO_TCP {
			return nil, 0, syscall.EPROTONOSUPPORT
		}
		return &tcpEP{ep: n.st.TCP.NewEndpoint(), net: n}, proto, nil
	case SOCK_DGRAM:
		switch proto {
		case 0, IPPROTO_UDP:
			return &dgramEP{ep: n.st.NewDgram(stack.KindUDP, 17)}, IPPROTO_UDP, nil
		case IPPROTO_ICMP:
			return &dgramEP{ep: n.st.NewDgram(stack.KindPing, 1)}, proto, nil
		}
		return nil, 0, syscall.EPROTONOSUPPORT
	case SOCK_RAW:
		if proto <= 0 || proto > 255 {
			// Linux: raw socket with protocol 0 is EPROTONOSUPPORT.
			return nil, 0, syscall.EPROTONOSUPPORT
		}
		return &dgramEP{ep: n.st.NewDgram(stack.KindRaw, uint8(proto)), raw: true}, proto, nil
	case SOCK_SEQPACKET:
		return nil, 0, syscall.ESOCKTNOSUPPORT
	}
	return nil, 0, syscall.EINVAL
}

func inetAddr(a Sockaddr) (netip.AddrPort, error) {
	switch v := a.(type) {
	case *SockaddrInet:
		ap := v.AddrPort
		if !ap.Addr().IsValid() {
			return netip.AddrPort{}, syscall.EINVAL
		}
		if ap.Addr().Is4In6() {
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		if !ap.Addr().Is4() {
			return netip.AddrPort{}, syscall.EAFNOSUPPORT
		}
		return ap, nil
	case Unspec, *Unspec:
		return netip.AddrPort{}, nil
	}
	return netip.AddrPort{}, syscall.EAFNOSUPPORT
}

// dgramEP adapts UDP, ping and raw endpoints.
type dgramEP struct {
	ep       *stack.DgramEndpoint
	raw      bool
	v6       bool          // AF_INET6 (inet6.go)
	recvInfo atomic.Uint32 // IPV6_RECVPKTINFO / RECVHOPLIMIT / RECVTCLASS bits (inet6.go)
	sticky   atomic.Int32  // the sticky IPV6_PKTINFO's ifindex (inet6_pktinfo.go)
	po       peekOff       // SO_PEEK_OFF (peekoff.go)
	stamp    rxStamp       // SIOCGSTAMP (ioctl.go)
	ts       tsOpts        // SO_TIMESTAMP, SO_TIMESTAMPING (rxstamp.go)
}

// addr reads a socket address for this endpoint's family.
func (d *dgramEP) addr(a Sockaddr, allowV4, needScope bool) (netip.AddrPort, error) {
	if d.v6 {
		return inet6Addr(d.ep.Stack(), a, allowV4, needScope)
	}
	return inetAddr(a)
}

// sa makes the socket address this endpoint's family shows.
func (d *dgramEP) sa(ap netip.AddrPort) *SockaddrInet {
	if d.v6 {
		return sa6(ap)
	}
	return &SockaddrInet{ap}
}

func (d *dgramEP) stream() bool { return false }

func (d *dgramEP) bind(a Sockaddr) error {
	ap, err := d.addr(a, false, true)
	if err != nil {
		return err
	}
	if d.v6 && mappedIn(a) && d.ep.V6Only() {
		return syscall.EINVAL // a v4-mapped address on an IPv6-only socket
	}
	if !ap.IsValid() {
		return syscall.EAFNOSUPPORT
	}
	return d.ep.Bind(ap)
}

func (d *dgramEP) listen(int) error                    { return syscall.EOPNOTSUPP }
func (d *dgramEP) accept() (endpoint, Sockaddr, error) { return nil, nil, syscall.EOPNOTSUPP }
func (d *dgramEP) connectResult() error                { return d.ep.SoError() }

func (d *dgramEP) connect(a Sockaddr) error {
	if d.v6 && plainInet4(a) && d.ep.V6Only() {
		return syscall.EAFNOSUPPORT // sockaddr_in on an IPv6-only socket, as Linux
	}
	ap, err := d.addr(a, !d.raw, true)
	if err != nil {
		return err
	}
	return d.ep.Connect(ap)
}

func (d *dgramEP) send(b []byte, flags int, to Sockaddr, wait <-chan struct{}) (int, error) {
	var ap netip.AddrPort
	if to != nil {
		var err error
		if ap, err = d.addr(to, !d.raw, false); err != nil {
			return 0, err
		}
	}
	var n int
	var err error
	if d.sticky.Load() != 0 {
		var o stack.SendOpts
		o, err = d.sendOpts(ap, nil) // the sticky IPV6_PKTINFO (inet6_pktinfo.go)
		if err != nil {
			return 0, err
		}
		n, err = d.ep.SendMsg(b, ap, o, wait)
	} else {
		n, err = d.ep.SendTo(b, ap, wait)
	}
	if err == nil {
		d.txStamped(d.ts.sockReq(), b, ap) // txstamp.go
	}
	return n, err
}

func (d *dgramEP) recv(b []byte, flags int) (int, int, Sockaddr, error) {
	n, full, from, err := d.recvFrom(b, flags, nil, nil)
	if err != nil {
		if flags&msgWaited != 0 && errors.Is(err, syscall.EAGAIN) && d.ep.ShutRd() {
			return 0, 0, nil, nil // a blocking receive ends at SHUT_RD, as in Linux
		}
		return 0, 0, nil, err
	}
	var sa Sockaddr
	if from.IsValid() && flags&msgNoFrom == 0 {
		sa = d.sa(from)
	}
	return n, full, sa, nil
}

func (d *dgramEP) shutdown(how int) error { return d.ep.Shutdown(how) }
func (d *dgramEP) close()                 { d.ep.Close() }
func (d *dgramEP) readiness(m waiter.EventMask) waiter.EventMask {
	return d.ep.Readiness(m)
}
func (d *dgramEP) waiter() *waiter.Queue { return d.ep.Waiter() }
func (d *dgramEP) localAddr() Sockaddr {
	a := d.ep.LocalAddr()
	if d.raw {
		// Linux reports a raw socket's protocol in the port field.
		a = netip.AddrPortFrom(a.Addr(), uint16(d.ep.Proto()))
	}
	return d.sa(a)
}
func (d *dgramEP) remoteAddr() (Sockaddr, error) {
	ap, err := d.ep.RemoteAddr()
	if err != nil {
		return nil, err
	}
	return d.sa(ap), nil
}

// tcpEP adapts a TCP endpoint.
type tcpEP struct {
	ep       *tcp.Endpoint
	net      *Net
	v6       bool          // AF_INET6 (inet6.go)
	recvInfo atomic.Uint32 // IPV6_RECV* bits, kept and reported (inet6.go)
	// mc holds the memberships of source-specific calls (ssm.go).
	mc atomic.Pointer[stack.DgramEndpoint]
	po peekOff // SO_PEEK_OFF (peekoff.go)
	// stamp is SIOCGSTAMP's record, made at the first error-queue read
	// or request (stampRec): most connections never have one, and 16
	// bytes more here moved tcpEP into the next size class (TestMemPerPair).
	// It holds the timestamp options too (tcpstamp.go).
	stamp atomic.Pointer[tcpStamp]
}

// stampRec is t's SIOCGSTAMP record, made on first use.
func (t *tcpEP) stampRec() *rxStamp { return &t.tcpStampOpts(true).rxStamp }

func (t *tcpEP) addr(a Sockaddr, needScope bool) (netip.AddrPort, error) {
	if t.v6 {
		return inet6Addr(t.net.st, a, false, needScope)
	}
	return inetAddr(a)
}

func (t *tcpEP) sa(ap netip.AddrPort) *SockaddrInet {
	if t.v6 {
		return sa6(ap)
	}
	return &SockaddrInet{ap}
}

func (t *tcpEP) stream() bool { return true }

func (t *tcpEP) bind(a Sockaddr) error {
	dev, err := t.scopeDev(a, false) // bindtodev.go
	if err != nil {
		return err
	}
	ap, err := t.addr(a, !dev)
	if err != nil {
		return err
	}
	if t.v6 && mappedIn(a) && t.ep.V6Only() {
		return syscall.EINVAL // a v4-mapped address on an IPv6-only socket
	}
	if !ap.IsValid() {
		return syscall.EAFNOSUPPORT
	}
	if t.v6 && ap.Addr().Is6() && ap.Addr().IsMulticast() {
		return syscall.EINVAL // Linux's inet6_bind refuses a multicast address for TCP
	}
	return t.ep.Bind(ap)
}

func (t *tcpEP) listen(backlog int) error { return t.ep.Listen(backlog) }

func (t *tcpEP) accept() (endpoint, Sockaddr, error) {
	ne, from, err := t.ep.Accept()
	if err != nil {
		return nil, nil, err
	}
	nt := &tcpEP{ep: ne, net: t.net, v6: t.v6}
	// The receive options (IP_PKTINFO, IP_RECVTTL, IPV6_RECVPKTINFO...)
	// are inherited, as Linux's clone of the listener copies them.
	nt.recvInfo.Store(t.recvInfo.Load())
	nt.inheritStamps(t) // tcpstamp.go
	return nt, t.sa(from), nil
}

func (t *tcpEP) connect(a Sockaddr) error {
	dev, err := t.scopeDev(a, true) // bindtodev.go
	if err != nil {
		return err
	}
	ap, err := t.addr(a, !dev)
	if err != nil {
		return err
	}
	if t.v6 && ap.Addr().Is6() && t.ep.LocalAddr().Addr().Is4() && !t.ep.LocalAddr().Addr().IsUnspecified() {
		// Bound to a v4-mapped address, connecting to IPv6: Linux's
		// tcp_v6_connect says EAFNOSUPPORT.
		return syscall.EAFNOSUPPORT
	}
	if !ap.IsValid() {
		// AF_UNSPEC on a stream socket: Linux disconnects; we refuse.
		return syscall.EAFNOSUPPORT
	}
	if ap.Addr().IsUnspecified() {
		lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if ap.Addr().Is6() {
			lo = netip.IPv6Loopback() // connect to :: is to ::1
		}
		ap = netip.AddrPortFrom(lo, ap.Port())
	}
	return t.ep.Connect(ap)
}

func (t *tcpEP) connectResult() error { return t.ep.SoError() }

func (t *tcpEP) send(b []byte, flags int, to Sockaddr, _ <-chan struct{}) (int, error) {
	if to != nil {
		// Linux ignores the address on a connected stream socket, and
		// fails with EPIPE/ENOTCONN otherwise; keep it simple and equal.
	}
	if flags&MSG_OOB != 0 {
		return t.ep.WriteOOB(b) // urgent data (socket/oob.go)
	}
	return t.ep.Write(b)
}

func (t *tcpEP) recv(b []byte, flags int) (int, int, Sockaddr, error) {
	if off := t.po.get(); off >= 0 {
		return t.recvPeekOff(b, flags, off) // peekoff.go
	}
	n, err := t.ep.Read(b, flags&MSG_PEEK != 0)
	return n, n, nil, err
}

func (t *tcpEP) shutdown(how int) error { return t.ep.Shutdown(how) }
func (t *tcpEP) close() {
	t.ep.Close()
	if e := t.mc.Swap(nil); e != nil {
		e.Close()
	}
}
func (t *tcpEP) readiness(m waiter.EventMask) waiter.EventMask {
	return t.ep.Readiness(m)
}
func (t *tcpEP) waiter() *waiter.Queue { return t.ep.Waiter() }
func (t *tcpEP) localAddr() Sockaddr {
	ap := t.ep.LocalAddr()
	if !ap.IsValid() {
		ap = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if t.v6 {
			ap = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
	}
	return t.sa(ap)
}
func (t *tcpEP) remoteAddr() (Sockaddr, error) {
	ap, err := t.ep.RemoteAddr()
	if err != nil {
		return nil, err
	}
	return t.sa(ap), nil
}
