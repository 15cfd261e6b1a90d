package tcp

import (
	"net/netip"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/wire"
)

// Segment is one TCP segment handed to the host for transmission. The
// host builds the IP header (and link header), copies the payload,
// computes the TCP checksum over the pseudo-header and sends it.
type Segment struct {
	Local, Remote netip.AddrPort
	Header        wire.TCPHeader // ports are filled by TCP
	// Payload is Payload[0] followed by Payload[1] (a ring buffer may
	// wrap); either may be empty. The host copies it before returning.
	Payload [2][]byte
	TOS     uint8
	TTL     uint8 // 0 means the host default
	HopZero bool  // TTL 0 is meant (IPV6_UNICAST_HOPS 0)
	// GSOSize, when set, makes the segment a super-segment: its payload
	// goes on the wire as segments of GSOSize bytes (the host or the link
	// cuts it), each with this header and its own sequence number.
	GSOSize int
	// IPOpts are the IPv4 options of the segment's IP header
	// (IP_OPTIONS, ipopts.go); nil: none.
	IPOpts IPOptions
	// Ext6 are the IPv6 extension headers after the segment's IPv6
	// header (ext6.go); nil: none.
	Ext6 IPv6Ext
	// Mark is the connection's SO_MARK, for the host's policy routing
	// (mark.go).
	Mark uint32
	// Dev is the index of the interface the segment must leave by: the
	// connection's SO_BINDTODEVICE (bindtodev.go); 0: the route's.
	Dev int
	// stampSnd: a queued segment whose sends' SND timestamps wait for
	// the flusher to hand it to the host (txstamp.go).
	stampSnd bool
}

// Route is what the host knows about the path to a remote address.
type Route struct {
	Source netip.Addr // the local address to use
	MTU    int        // IP MTU of the route (the path MTU when known)
	// GSOMax is the largest IP packet the host takes as one super-segment
	// on this route (0: none above MTU).
	GSOMax int
	// Defer says Output may be called for this route after the
	// endpoint's lock is released, segments queued meanwhile: its link
	// never refuses a frame for a full queue (link.NeverQueueFull), so
	// nothing Output could return would have to be taken back (txdefer.go).
	Defer bool
	// Hold names the link this route's frames leave by, when it can
	// hold a flush's frames and send them together (OutputHolder), or
	// a blocking read can busy-poll it (RxInterface): an id from 1 to
	// 65535 the host knows; 0, none. OutputHolder ignores a link that
	// cannot hold.
	Hold int
}

// Host is what TCP needs from the IP layer beneath it. The stack
// implements it. Its methods may be called with TCP locks held, so they
// must never call back into TCP synchronously.
type Host interface {
	// Clock is the only source of time and timers.
	Clock() clock.Clock
	// Output transmits a segment. It returns EHOSTUNREACH / ENETUNREACH
	// when there is no route, EMSGSIZE when the packet does not fit the MTU
	// and DF is set (TCP always sets DF), ENOBUFS when a queue is full
	// (the segment is lost, as on a wire). Neighbour-resolution failures
	// are reported later through Protocol.HandleError.
	Output(seg *Segment) error
	// Route finds the route to remote; the error is ENETUNREACH when none.
	Route(remote netip.Addr) (Route, error)
	// IsLocal reports whether addr is one of the host's addresses
	// (or unspecified/loopback rules: 127.0.0.0/8 counts as local).
	IsLocal(addr netip.Addr) bool
}
