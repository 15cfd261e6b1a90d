package tcp

import "net/netip"

// IP_OPTIONS on a TCP socket (Linux's inet_opt with icsk_ext_hdr_len):
// the IPv4 options every segment of the connection carries. TCP keeps
// them as an opaque value the host compiled (stack.SendIPOpts) and hands
// them with each segment (Segment.IPOpts); the host writes them into the
// IP header, filling what a send fills (Record Route's and Timestamp's
// slots). TCP's part is the room they take: the send MSS is what the
// path MTU leaves after them, as Linux's tcp_mtu_to_mss takes
// icsk_ext_hdr_len off (after the clamp by the peer's MSS), while the
// MSS TCP advertises stays the route's (Linux's advmss does not count
// them either).
//
// They apply to IPv4 peers only: an AF_INET6 socket keeps them and uses
// them once connected to a v4-mapped peer, as Linux does.

// IPOptions is a compiled IP_OPTIONS value (nil: none). Len is the
// options' length in the IP header (a multiple of 4, at most 40);
// FirstHop is a source route's first hop, where the segments go.
type IPOptions interface {
	Len() int
	FirstHop() (netip.Addr, bool)
}

// ipOptLen is the room the options take in each segment's IP header:
// none towards an IPv6 peer.
func (e *Endpoint) ipOptLen() int {
	if e.ipOpts == nil || !e.remote.Addr().Unmap().Is4() {
		return e.ext6Len() // an IPv6 peer's extension headers (ext6.go)
	}
	return e.ipOpts.Len()
}

// segIPOpts is what a segment of the connection carries.
func (e *Endpoint) segIPOpts() IPOptions {
	if e.ipOpts == nil || !e.remote.Addr().Unmap().Is4() {
		return nil
	}
	return e.ipOpts
}

// ipOptsNoGSO reports a source route: its segments go to the first hop
// with a pseudo-header for the final destination, which the host's
// segmentation offload does not build, so they go one by one.
func (e *Endpoint) ipOptsNoGSO() bool {
	if o := e.segIPOpts(); o != nil {
		_, srr := o.FirstHop()
		return srr
	}
	return false
}

// SetIPOptions is setsockopt(IP_OPTIONS) (nil: none). On a connection
// past its handshake the send MSS follows at once (Linux's tcp_sync_mss),
// so the next segments are cut to fit the new header.
func (e *Endpoint) SetIPOptions(o IPOptions) {
	e.setHeaderOpt(func(x epOpts) epOpts { x.ipOpts = o; return x })
}

// setHeaderOpt applies f, a change to the network headers' options, and
// on a connection past its handshake recomputes the send MSS at once.
func (e *Endpoint) setHeaderOpt(f func(epOpts) epOpts) {
	e.lock()
	defer e.unlock()
	e.setOpt(f)
	switch e.state {
	case StateClosed, StateListen, StateSynSent, StateSynRcvd:
		return // negotiate takes them into account
	}
	e.sndMSS = e.negotiatedMSS()
	e.ccs.MSS = e.sndMSS
}

// IPOptions is getsockopt(IP_OPTIONS)'s value (nil: none).
func (e *Endpoint) IPOptions() IPOptions {
	e.lock()
	defer e.unlock()
	return e.ipOpts
}

// negotiatedMSS is the send MSS from the path MTU, the peer's MSS, the
// user's TCP_MAXSEG, the IP options and timestamps (negotiate's rule).
func (e *Endpoint) negotiatedMSS() int {
	mtu := e.pmtu
	if mtu <= 0 {
		mtu = 1500
	}
	mss := min(int(e.peerMSS), mtu-40)
	if e.userMSS > 0 {
		mss = min(mss, int(e.userMSS))
	}
	mss -= e.ipOptLen()
	if e.tsOK {
		mss -= 12
	}
	return max(mss, 64)
}

// HandleSegmentEcho is HandleSegment for a segment whose IPv4 header
// had options: echo is what a reply carries (Linux's ip_options_echo,
// compiled by the host). A connection this segment opens (a SYN to a
// listener) sends its SYN-ACK and every later segment with them, as
// Linux's child socket does (tcp_v4_save_options); nil: none.
func (p *Protocol) HandleSegmentEcho(src, dst netip.Addr, tos uint8, b []byte, echo IPOptions) {
	p.handleSegmentEcho(src, dst, tos, b, nil, 0, echoValue{echo})
}

// HandleSegmentEcho is Protocol.HandleSegmentEcho with ACKs deferred to
// Flush.
func (b *Batch) HandleSegmentEcho(src, dst netip.Addr, tos uint8, seg []byte, echo IPOptions) {
	b.p.handleSegmentEcho(src, dst, tos, seg, b, 0, echoValue{echo})
}
