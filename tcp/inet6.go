package tcp

import (
	"net/netip"
	"syscall"
)

// AF_INET6 endpoints: the wildcard is ::, which (without IPV6_V6ONLY)
// also takes IPv4 connections; addresses are plain netip.Addr either way.

// SetInet6 marks the endpoint as an AF_INET6 socket's.
func (e *Endpoint) SetInet6() {
	e.lock()
	e.inet6 = true
	e.unlock()
}

// SetV6Only is IPV6_V6ONLY; EINVAL once bound, as Linux.
func (e *Endpoint) SetV6Only(v bool) error {
	e.lock()
	defer e.unlock()
	if e.bound {
		return syscall.EINVAL
	}
	e.v6only = v
	return nil
}

// V6Only is IPV6_V6ONLY.
func (e *Endpoint) V6Only() bool {
	e.lock()
	defer e.unlock()
	return e.v6only
}

func (e *Endpoint) anyAddr() netip.Addr {
	if e.inet6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}
