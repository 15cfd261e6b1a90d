package socket

import (
	"sync"
	"syscall"

	"github.com/sockstack/sockstack/tcp"
)

// An AF_INET6 stream socket keeps its IPv4 options (IP_TTL, IP_TOS: for
// v4-mapped connections) apart from the IPv6 ones (IPV6_UNICAST_HOPS,
// IPV6_TCLASS), as Linux's inet_sock and ipv6_pinfo do. The TCP endpoint
// has room for one TTL and one TOS, the ones on the wire; the other set
// lives here, in the socket's rarely used state, made by the first of
// these options set. (Datagram endpoints keep both sets themselves: a
// dual-stack UDP socket chooses per datagram.)

// inetApart is both sets. The pointer is shared by duplicates (Dup).
type inetApart struct {
	mu            sync.Mutex
	ttl4, hops6   int  // -1: the default; hops6 may be 0
	tos4, tclass6 int  // TCP's: ECN bits clear
	mapped        bool // connected to a v4-mapped peer: the endpoint has the IPv4 set
}

// apartOpt is one of the four options.
func apartOpt(level, name int) bool {
	return level == SOL_IP && (name == IP_TTL || name == IP_TOS) ||
		level == IPPROTO_IPV6 && (name == IPV6_UNICAST_HOPS || name == IPV6_TCLASS)
}

// apartTCP is the socket's TCP endpoint when it is an AF_INET6 one.
func (s *Socket) apartTCP() *tcpEP {
	if t, ok := s.ep.(*tcpEP); ok && t.v6 {
		return t
	}
	return nil
}

// apart returns the socket's sets, made on first use when mk.
func (s *Socket) apart(mk bool) *inetApart {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.rx().apart
	if a == nil && mk {
		a = &inetApart{ttl4: -1, hops6: -1}
		s.ext().apart = a
	}
	return a
}

// setApart is setsockopt of one of the four on an AF_INET6 stream
// socket, with the checks Linux makes.
func (s *Socket) setApart(t *tcpEP, level, name int, v any) error {
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	switch {
	case level == SOL_IP && name == IP_TTL:
		if i == 0 || i < -1 || i > 255 {
			return syscall.EINVAL // 0 is IPV6_UNICAST_HOPS's only
		}
	case level == IPPROTO_IPV6:
		if i < -1 || i > 255 {
			return syscall.EINVAL
		}
	}
	a := s.apart(true)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch name {
	case IP_TTL:
		a.ttl4 = i
	case IP_TOS:
		a.tos4 = int(uint8(i) &^ 3) // any int: its low byte, as Linux
	case IPV6_UNICAST_HOPS:
		a.hops6 = i
	case IPV6_TCLASS:
		a.tclass6 = int(uint8(max(i, 0)) &^ 3)
	}
	a.apply(t.ep)
	return nil
}

// apply puts the set of the connection's family on the endpoint and, for
// a listener, the IPv4 set for its IPv4 children (a.mu held).
func (a *inetApart) apply(e *tcp.Endpoint) {
	if a.mapped {
		e.SetTTL(a.ttl4)
		e.SetTOS(a.tos4)
	} else {
		e.SetTTL(a.hops6)
		e.SetTOS(a.tclass6)
	}
	e.SetListenIPv4(max(a.ttl4, 0), a.tos4)
}

// getApart reads one of the four; ok false: never set, the endpoint's
// (default) value stands.
func (s *Socket) getApart(name int) (v int, ok bool) {
	a := s.apart(false)
	if a == nil {
		return 0, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch name {
	case IP_TTL:
		v = a.ttl4
	case IP_TOS:
		return a.tos4, true
	case IPV6_UNICAST_HOPS:
		v = a.hops6
	case IPV6_TCLASS:
		return a.tclass6, true
	}
	if v < 0 {
		v = 64 // the default of both (ip_default_ttl, the route's hop limit)
	}
	return v, true
}

// apartConnect picks the set for a connect to sa before the SYN leaves.
func (s *Socket) apartConnect(t *tcpEP, sa Sockaddr) {
	a := s.apart(false)
	if a == nil || t.ep.State() != tcp.StateClosed {
		return
	}
	a.mu.Lock()
	a.mapped = mappedIn(sa)
	a.apply(t.ep)
	a.mu.Unlock()
}

// apartListen gives a new listener its IPv4 set.
func (s *Socket) apartListen(t *tcpEP) {
	if a := s.apart(false); a != nil {
		a.mu.Lock()
		a.apply(t.ep)
		a.mu.Unlock()
	}
}

// apartAccepted gives an accepted socket a copy of the listener's sets
// (its endpoint already has those of its family, from the listener).
func (s *Socket) apartAccepted(ns *Socket, from Sockaddr) {
	a := s.apart(false)
	if a == nil {
		return
	}
	a.mu.Lock()
	c := &inetApart{ttl4: a.ttl4, hops6: a.hops6, tos4: a.tos4, tclass6: a.tclass6, mapped: mappedIn(from)}
	a.mu.Unlock()
	ns.mu.Lock()
	ns.ext().apart = c
	ns.mu.Unlock()
}
