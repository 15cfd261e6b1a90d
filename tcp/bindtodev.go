package tcp

import "net/netip"

// SO_BINDTODEVICE on a TCP socket, as Linux's sk_bound_dev_if: the
// interface index lives in the shared option set (epOpts.dev), so an
// endpoint does not grow, and an accepted connection has its listener's
// (the child shares its options, as inet_csk_clone_lock copies the
// field). A bound connection routes through its device only (the host's
// DevRouter, Segment.Dev on every segment) and takes segments that
// arrived on it only; a listener bound to a device accepts SYNs from it
// only, and wins over an unbound one for them (inet_hashtables.c's
// compute_score). Two sockets on one address and port bound to different
// devices do not conflict (inet_bind_conflict).
//
// The demultiplexer reads a listener's or a bound user's device under
// p.mu, where an endpoint's epOpts cannot be read: the port's entry
// keeps a copy (portEntry.devs), written under p.mu with the option.

// DevRouter is a Host that routes through one interface (SO_BINDTODEVICE;
// Linux's flowi_oif). A Host that is not one routes bound connections as
// unbound ones.
type DevRouter interface {
	RouteDev(remote, local netip.Addr, mark uint32, dev int) (Route, error)
}

// SetInterface tells the batch which interface its segments arrive on
// (its index; 0: not known, they match sockets bound to any device).
// loopback: they are the host's own, delivered through loopback; as in
// Linux (rt_iif, from the local route's device) such a segment comes
// from the interface that holds its destination address, loopback's for
// 127.0.0.0/8 and ::1 (the host's LocalDever says which).
func (b *Batch) SetInterface(index int, loopback bool) {
	b.dif = int32(index)
	b.loop = loopback
	b.anyDev = index == 0
}

// LocalDever is a Host that tells which interface holds one of its
// addresses (its index), for a segment delivered through loopback.
type LocalDever interface {
	LocalDev(addr netip.Addr) int
}

// devOK reports whether a socket bound to dev (0: none) on the local
// address local takes s.
func (p *Protocol) devOK(s *segment, dev int32, local netip.Addr) bool {
	if dev == 0 || s.anyDev {
		return true
	}
	if s.loop {
		// Looked up once, and only for a socket bound to a device.
		s.loop = false
		if ld, ok := p.host.(LocalDever); ok {
			s.dif = int32(ld.LocalDev(local))
		} else {
			s.anyDev = true
			return true
		}
	}
	return dev == s.dif
}

// SetBindToDevice is setsockopt(SO_BINDTODEVICE / SO_BINDTOIFINDEX) with
// an interface index (0 unbinds). As on Linux it applies at once, to a
// listener's next SYN and a connection's next segment (whose route the
// host looks up again, sk_dst_reset); a bound port is not checked for
// conflicts again.
func (e *Endpoint) SetBindToDevice(dev int) {
	e.lock()
	defer e.unlock()
	d := int32(dev)
	if d == e.dev {
		return
	}
	old := e.dev
	e.setOpt(func(x epOpts) epOpts { x.dev = d; return x })
	if !e.bound && !e.childPort {
		return
	}
	p := e.p
	p.mu.Lock()
	defer p.mu.Unlock()
	pe := p.ports[e.local.Port()]
	if pe == nil {
		return
	}
	if e.childPort {
		k := childKey{e.local.Addr(), e.reuseAddr, e.reusePort, old}
		if pe.children[k]--; pe.children[k] <= 0 {
			delete(pe.children, k)
		}
		k.dev = d
		pe.children[k]++
		return
	}
	pe.setDev(e, d)
}

// BindToDevice is getsockopt(SO_BINDTOIFINDEX): the bound interface's
// index, 0 when none.
func (e *Endpoint) BindToDevice() int {
	e.lock()
	defer e.unlock()
	return int(e.dev)
}

// setDev records u's device in the port's entry (p.mu held).
func (pe *portEntry) setDev(u *Endpoint, dev int32) {
	if dev == 0 {
		delete(pe.devs, u) // a no-op on a nil map
		return
	}
	if pe.devs == nil {
		pe.devs = make(map[*Endpoint]int32)
	}
	pe.devs[u] = dev
}

// devOf is u's device as its port's entry knows it (p.mu held).
func (pe *portEntry) devOf(u *Endpoint) int32 {
	if pe == nil || pe.devs == nil {
		return 0
	}
	return pe.devs[u]
}

// devsApart reports whether sockets bound to a and b may share an
// address and port: both bound, to different devices.
func devsApart(a, b int32) bool { return a != 0 && b != 0 && a != b }

// devPrefer adds listener l (bound to a device: bound) to the candidates
// c, of which bound ones (cBound) take the place of unbound ones.
func devPrefer(c []*Endpoint, cBound bool, l *Endpoint, bound bool) ([]*Endpoint, bool) {
	switch {
	case bound && !cBound:
		return append(c[:0], l), true
	case !bound && cBound:
		return c, true
	}
	return append(c, l), cBound
}

// devOpt is e's bound device (e's lock held, or e not yet shared).
func (e *Endpoint) devOpt() int32 {
	if e.epOpts == nil {
		return 0 // a bare endpoint of a test
	}
	return e.dev
}

// RxInterface is the index of the interface whose link a blocking read
// busy-polls (socket's SO_BUSY_POLL): the one the route to the peer
// leaves by, when its link holds a flush's frames (Route.Hold: the TAP,
// TUN and AF_PACKET links, the ones that can be polled); 0 otherwise.
// With symmetric routes, as on one link to the kernel, that is the one
// the data comes in on. (The interface of the last segment would need
// four bytes more in the endpoint, which would cost a size class.)
func (e *Endpoint) RxInterface() int {
	e.lock()
	defer e.unlock()
	return int(e.txHold)
}
