package tcp

import "net/netip"

// Transparent proxying, as Linux's IP_TRANSPARENT with a TPROXY rule:
// the stack diverts a segment addressed to a foreign address to a
// transparent listener on another port, and the connection it makes
// keeps the packet's original destination as its local address, so the
// application learns it from getsockname and replies leave from it.

// tproxyOpts are an endpoint's IP_TRANSPARENT and IP_FREEBIND bits
// (the IPv6 options set the same bits, as in Linux, where both levels
// write one socket flag). One byte: it sits in the Endpoint's padding.
type tproxyOpts uint8

const (
	tpTransparent tproxyOpts = 1 << iota
	tpFreebind
)

// nonLocal reports whether the endpoint may bind an address the host
// does not have.
func (o tproxyOpts) nonLocal() bool { return o != 0 }

func (o *tproxyOpts) set(bit tproxyOpts, on bool) {
	if on {
		*o |= bit
	} else {
		*o &^= bit
	}
}

// SetTransparent sets IP_TRANSPARENT.
func (e *Endpoint) SetTransparent(on bool) {
	e.lock()
	e.tproxy.set(tpTransparent, on)
	e.unlock()
}

// Transparent reports IP_TRANSPARENT.
func (e *Endpoint) Transparent() bool {
	e.lock()
	defer e.unlock()
	return e.tproxy&tpTransparent != 0
}

// SetFreebind sets IP_FREEBIND.
func (e *Endpoint) SetFreebind(on bool) {
	e.lock()
	e.tproxy.set(tpFreebind, on)
	e.unlock()
}

// Freebind reports IP_FREEBIND.
func (e *Endpoint) Freebind() bool {
	e.lock()
	defer e.unlock()
	return e.tproxy&tpFreebind != 0
}

// HandleDiverted takes a segment the host diverted by a transparent
// rule: dst is the packet's original destination, which need not be
// ours, and port the local port of the transparent listener that may
// take a new connection (checksum already verified).
func (p *Protocol) HandleDiverted(src, dst netip.Addr, tos uint8, b []byte, port uint16) {
	p.handleSegment(src, dst, tos, b, nil, port)
}

// HandleDiverted is Protocol.HandleDiverted with ACKs deferred to Flush.
func (b *Batch) HandleDiverted(src, dst netip.Addr, tos uint8, seg []byte, port uint16) {
	b.p.handleSegment(src, dst, tos, seg, b, port)
}

// divertListen hands a diverted segment that matched no connection to
// the transparent listener on port: the child it makes has k.local, the
// original destination, as its address. Without such a listener the
// segment is answered with a reset from the original destination, as
// for a port nobody listens on.
func (p *Protocol) divertListen(k connKey, s *segment, port uint16) {
	if l := p.findTransparent(k, port); l != nil {
		l.handleListen(k, s)
		return
	}
	p.st.NoPortDrops.Add(1)
	p.st.TProxyNoListener.Add(1)
	p.sendResetFor(k, s)
}

// findTransparent picks a listener with IP_TRANSPARENT on port whose
// address is k's own address or a wildcard of its family. The flag is
// read under each listener's lock, taken after p.mu is released (the
// lock order is endpoint, then p.mu).
func (p *Protocol) findTransparent(k connKey, port uint16) *Endpoint {
	var buf [8]*Endpoint
	p.mu.RLock()
	ls := append(buf[:0], p.listeners[port]...)
	p.mu.RUnlock()
	var pick *Endpoint
	d := k.local.Addr()
	for _, l := range ls {
		l.lock()
		ok := l.tproxy&tpTransparent != 0 && l.state == StateListen
		a := l.local.Addr()
		exact := a == d
		ok = ok && (exact || a.IsUnspecified() && (a.Is4() == d.Is4() || a.Is6() && !l.v6only))
		l.unlock()
		if !ok {
			continue
		}
		if exact {
			return l
		}
		if pick == nil {
			pick = l
		}
	}
	return pick
}

// bindAddrOK is Bind's address check: a non-local unicast address
// needs IP_TRANSPARENT or IP_FREEBIND (EADDRNOTAVAIL otherwise).
func (e *Endpoint) bindAddrOK(a netip.Addr) bool {
	return a.IsUnspecified() || e.p.host.IsLocal(a) || a.IsMulticast() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || e.tproxy.nonLocal()
}

// HasConn reports whether a connection has exactly this 4-tuple: the
// stack asks before it takes an ICMP error addressed to a diverted
// connection's address, which is not the host's.
func (p *Protocol) HasConn(local, remote netip.AddrPort) bool {
	p.mu.RLock()
	e := p.conns.get(connKey{local, remote})
	p.mu.RUnlock()
	return e != nil
}
