package tcp

import (
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/waiter"
)

// Protocol is the TCP layer of one host.
type Protocol struct {
	host Host
	cfg  Config
	mu   sync.RWMutex
}

// NewProtocol makes the TCP layer over h.
func NewProtocol(h Host, cfg Config) *Protocol {
	cfg.setDefaults()
	return &Protocol{host: h, cfg: cfg}
}

// HandleSegment takes one TCP segment addressed to us (checksum verified).
func (p *Protocol) HandleSegment(src, dst netip.Addr, tos uint8, seg []byte) {}

// HandleError reports an ICMP / neighbour error for a segment we sent.
func (p *Protocol) HandleError(local, remote netip.AddrPort, seq uint32, kind ErrorKind, mtu int) {}

// Stats returns the counters.
func (p *Protocol) Stats() StatsSnapshot { return StatsSnapshot{} }

// NewEndpoint makes an unbound endpoint.
func (p *Protocol) NewEndpoint() *Endpoint { return &Endpoint{p: p} }

// Table lists the sockets.
func (p *Protocol) Table() []ConnInfo { return nil }

// Close stops everything.
func (p *Protocol) Close() {}

// Endpoint is one TCP socket. It never blocks.
type Endpoint struct {
	p  *Protocol
	mu sync.Mutex
	wq waiter.Queue
}

func (e *Endpoint) Bind(addr netip.AddrPort) error { return syscall.ENOSYS }
func (e *Endpoint) Listen(backlog int) error       { return syscall.ENOSYS }
func (e *Endpoint) Accept() (*Endpoint, netip.AddrPort, error) {
	return nil, netip.AddrPort{}, syscall.EAGAIN
}
func (e *Endpoint) Connect(addr netip.AddrPort) error                { return syscall.ENOSYS }
func (e *Endpoint) Read(b []byte, peek bool) (int, error)            { return 0, syscall.ENOTCONN }
func (e *Endpoint) Write(b []byte) (int, error)                      { return 0, syscall.ENOTCONN }
func (e *Endpoint) Shutdown(how int) error                           { return syscall.ENOTCONN }
func (e *Endpoint) Close()                                           {}
func (e *Endpoint) Readiness(mask waiter.EventMask) waiter.EventMask { return 0 }
func (e *Endpoint) Waiter() *waiter.Queue                            { return &e.wq }
func (e *Endpoint) LocalAddr() netip.AddrPort                        { return netip.AddrPort{} }
func (e *Endpoint) RemoteAddr() (netip.AddrPort, error)              { return netip.AddrPort{}, syscall.ENOTCONN }
func (e *Endpoint) SoError() error                                   { return nil }
func (e *Endpoint) State() State                                     { return StateClosed }
func (e *Endpoint) Info() Info                                       { return Info{} }
func (e *Endpoint) SetNoDelay(v bool)                                {}
func (e *Endpoint) NoDelay() bool                                    { return false }
func (e *Endpoint) SetCork(v bool)                                   {}
func (e *Endpoint) Cork() bool                                       { return false }
func (e *Endpoint) SetKeepAlive(v bool)                              {}
func (e *Endpoint) KeepAlive() bool                                  { return false }
func (e *Endpoint) SetKeepIdle(d time.Duration) error                { return nil }
func (e *Endpoint) KeepIdle() time.Duration                          { return 0 }
func (e *Endpoint) SetKeepIntvl(d time.Duration) error               { return nil }
func (e *Endpoint) KeepIntvl() time.Duration                         { return 0 }
func (e *Endpoint) SetKeepCnt(n int) error                           { return nil }
func (e *Endpoint) KeepCnt() int                                     { return 0 }
func (e *Endpoint) SetLinger(on bool, d time.Duration) error         { return nil }
func (e *Endpoint) Linger() (bool, time.Duration)                    { return false, 0 }
func (e *Endpoint) SetRecvBuf(n int) error                           { return nil }
func (e *Endpoint) RecvBuf() int                                     { return 0 }
func (e *Endpoint) SetSendBuf(n int) error                           { return nil }
func (e *Endpoint) SendBuf() int                                     { return 0 }
func (e *Endpoint) SetMaxSeg(n int) error                            { return nil }
func (e *Endpoint) MaxSeg() int                                      { return 0 }
func (e *Endpoint) SetReuseAddr(v bool)                              {}
func (e *Endpoint) ReuseAddr() bool                                  { return false }
func (e *Endpoint) SetReusePort(v bool)                              {}
func (e *Endpoint) ReusePort() bool                                  { return false }
func (e *Endpoint) SetTTL(n int) error                               { return nil }
func (e *Endpoint) TTL() int                                         { return 0 }
func (e *Endpoint) SetTOS(n int) error                               { return nil }
func (e *Endpoint) TOS() int                                         { return 0 }
func (e *Endpoint) SetCongestion(name string) error                  { return nil }
func (e *Endpoint) Congestion() string                               { return "" }
