package stack

import (
	"net/netip"
	"syscall"
)

// Socket options of datagram endpoints. Setters validate like Linux.

func (e *DgramEndpoint) SetBroadcast(v bool) { e.mu.Lock(); e.opts.broadcast = v; e.mu.Unlock() }
func (e *DgramEndpoint) Broadcast() bool     { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.broadcast }
func (e *DgramEndpoint) SetReuseAddr(v bool) { e.mu.Lock(); e.opts.reuseAddr = v; e.mu.Unlock() }
func (e *DgramEndpoint) ReuseAddr() bool     { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.reuseAddr }
func (e *DgramEndpoint) SetReusePort(v bool) { e.mu.Lock(); e.opts.reusePort = v; e.mu.Unlock() }
func (e *DgramEndpoint) ReusePort() bool     { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.reusePort }
func (e *DgramEndpoint) SetHdrIncl(v bool)   { e.mu.Lock(); e.opts.hdrIncl = v; e.mu.Unlock() }
func (e *DgramEndpoint) HdrIncl() bool       { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.hdrIncl }

// SetTTL sets IP_TTL: 1..255, or -1 for the default.
func (e *DgramEndpoint) SetTTL(v int) error {
	if v == 0 || v < -1 || v > 255 {
		return syscall.EINVAL
	}
	e.mu.Lock()
	e.opts.ttl = v
	e.mu.Unlock()
	return nil
}

// TTL is IP_TTL (the default when unset).
func (e *DgramEndpoint) TTL() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.opts.ttl < 0 {
		return int(e.s.opts.DefaultTTL)
	}
	return e.opts.ttl
}

func (e *DgramEndpoint) SetTOS(v int) { e.mu.Lock(); e.opts.tos = uint8(v); e.mu.Unlock() }
func (e *DgramEndpoint) TOS() int     { e.mu.Lock(); defer e.mu.Unlock(); return int(e.opts.tos) }

// SetMulticastTTL sets IP_MULTICAST_TTL: 0..255, -1 for the default 1.
func (e *DgramEndpoint) SetMulticastTTL(v int) error {
	if v < -1 || v > 255 {
		return syscall.EINVAL
	}
	if v == -1 {
		v = 1
	}
	e.mu.Lock()
	e.opts.mcastTTL = v
	e.mu.Unlock()
	return nil
}

func (e *DgramEndpoint) MulticastTTL() int { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.mcastTTL }
func (e *DgramEndpoint) SetMulticastLoop(v bool) {
	e.mu.Lock()
	e.opts.mcastLoop = v
	e.mu.Unlock()
}
func (e *DgramEndpoint) MulticastLoop() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.mcastLoop
}

// SetMulticastIf sets IP_MULTICAST_IF (nil: chosen by route).
func (e *DgramEndpoint) SetMulticastIf(n *NIC) { e.mu.Lock(); e.opts.mcastIf = n; e.mu.Unlock() }
func (e *DgramEndpoint) MulticastIf() *NIC     { e.mu.Lock(); defer e.mu.Unlock(); return e.opts.mcastIf }

// SetBindToDevice is SO_BINDTODEVICE: the socket sends through n and
// takes only datagrams that came in on it (nil unbinds). As on Linux a
// port already bound is not checked for conflicts again.
func (e *DgramEndpoint) SetBindToDevice(n *NIC) {
	idx := 0
	if n != nil {
		idx = n.id
	}
	e.SetBindToIfindex(idx)
}

// SetBindToIfindex is SO_BINDTOIFINDEX (0 unbinds). An index no NIC has
// is kept, as Linux's sock_bindtoindex does not look it up: nothing
// arrives on it, and sends fail as the route lookup does (devGoneErr).
func (e *DgramEndpoint) SetBindToIfindex(idx int) {
	n := e.s.NICByID(idx)
	e.mu.Lock()
	e.opts.bindDev, e.opts.bindIdx = n, int32(idx)
	e.mu.Unlock()
}

// BindIfindex is the bound device's index (0: none).
func (e *DgramEndpoint) BindIfindex() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return int(e.opts.bindIdx)
}

// devGoneErr is the route lookup's error through a device no NIC has:
// IPv4's ip_route_output says ENODEV, IPv6's finds no route (ENETUNREACH).
func devGoneErr(dst netip.Addr) error {
	if dst.Unmap().Is6() {
		return syscall.ENETUNREACH
	}
	return syscall.ENODEV
}

// devGoneLocked reports a bound device index no NIC has: the route
// lookup's ENODEV.
func (e *DgramEndpoint) devGoneLocked() bool { return e.opts.bindIdx != 0 && e.opts.bindDev == nil }

// Buffer limits as net.core.rmem_max / wmem_max on this project's
// machines (4 MiB); Linux caps SO_RCVBUF/SO_SNDBUF there, then doubles.
const (
	RmemMax = 4 << 20
	WmemMax = 4 << 20
)

// SetRecvBuf sets SO_RCVBUF like Linux: capped at RmemMax (a negative
// value is a huge unsigned one), doubled, at least 2304.
func (e *DgramEndpoint) SetRecvBuf(v int) {
	if v < 0 || v > RmemMax {
		v = RmemMax
	}
	v = max(v*2, 2304)
	e.mu.Lock()
	e.rcvbuf = v
	e.mu.Unlock()
}
func (e *DgramEndpoint) RecvBuf() int { e.mu.Lock(); defer e.mu.Unlock(); return e.rcvbuf }

// SetSendBuf sets SO_SNDBUF like Linux: capped at WmemMax, doubled, at least 4608.
func (e *DgramEndpoint) SetSendBuf(v int) {
	if v < 0 || v > WmemMax {
		v = WmemMax
	}
	v = max(v*2, 4608)
	e.mu.Lock()
	e.sndbuf = v
	e.mu.Unlock()
}
func (e *DgramEndpoint) SendBuf() int { e.mu.Lock(); defer e.mu.Unlock(); return e.sndbuf }

// NICOf returns the NIC holding address a (for IP_MULTICAST_IF).
func (e *DgramEndpoint) NICOf(a netip.Addr) *NIC { return e.s.ownerOf(a) }

// Proto is the IP protocol of the endpoint.
func (e *DgramEndpoint) Proto() uint8 { return e.proto }
