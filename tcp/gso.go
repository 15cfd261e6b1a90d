package tcp

// Segmentation offload: on a route whose link carries super-segments
// (Route.GSOMax above the MTU), a transmission of new data may hold
// several segments' worth of payload. The host or the link cuts it at
// the segment size (the same MSS a single segment would use), so the
// wire sees exactly the segments TCP would have sent one by one; TCP
// does the per-segment work (header, options, timers, the flight record)
// once per super-segment.

// gsoHeaderRoom bounds the IP and TCP header bytes of one segment (20
// bytes of IPv4 header plus up to 60 of TCP). Over IPv6 the host gives
// the route's MTU and GSOMax 20 bytes short (stack/tcphost.go), so the
// same arithmetic holds for its 40-byte header. IP_OPTIONS add their
// length (ipopts.go).
const gsoHeaderRoom = 80

// gsoLimit is the largest payload one transmission may carry: a whole
// number of segments of mss that fits the route's super-segment size, or
// mss itself when the route takes none.
func (e *Endpoint) gsoLimit(mss int) int {
	if int(e.gsoMax) <= e.pmtu || mss <= 0 || e.ipOptsNoGSO() {
		return mss
	}
	hdr := max(e.pmtu-mss, gsoHeaderRoom+e.ipOptLen())
	k := (int(e.gsoMax) - hdr) / mss
	if k <= 1 {
		return mss
	}
	return k * mss
}

// gsoFit trims a super-segment of n bytes (n > mss) to what cwnd room
// and the peer's window wnd allow, in whole segments. It returns 0 when
// not even one segment fits, so the caller falls back to the one-segment
// rules (Nagle, sender SWS avoidance, persist).
func gsoFit(n, mss, room, wnd int) int {
	n = min(n, room, wnd)
	if n < mss {
		return 0
	}
	return n - n%mss
}

// gsoSize is the segment size of a transmission of n payload bytes: the
// current segment MSS when n is a super-segment, else 0.
func (e *Endpoint) gsoSize(n int) int {
	if e.gsoMax == 0 || e.ipOptsNoGSO() {
		return 0
	}
	if mss := e.segMSS(); n > mss {
		return mss
	}
	return 0
}
