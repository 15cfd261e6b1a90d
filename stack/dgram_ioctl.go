package stack

// NextLen is the length of the datagram a read would take next, 0 when
// none is queued: ioctl(SIOCINQ) on a UDP or raw socket (Linux's
// first_packet_length and raw_ioctl). A UDP_GRO super-datagram counts
// whole, as it is read.
func (e *DgramEndpoint) NextLen() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		return 0
	}
	return len(e.queue[e.head].buf)
}
