package socket

import (
	"slices"
	"syscall"
)

// Out-of-band data on AF_UNIX stream sockets, as Linux has it since 5.15
// (CONFIG_AF_UNIX_OOB; unix_stream_sendmsg's queue_oob, manage_oob,
// unix_stream_recv_urg, SIOCATMARK in unix_ioctl), checked against the
// kernel by the conformance cases `unixoob/`:
//   - a send with MSG_OOB queues all but its last byte as usual and the
//     last byte as the out-of-band byte (an empty one: EOPNOTSUPP); a
//     later one makes the earlier byte ordinary data;
//   - a read stops before the byte; a read that starts on it skips it
//     (reads it with SO_OOBINLINE), and it is gone;
//   - recv with MSG_OOB takes it (EINVAL when none, or SO_OOBINLINE);
//     the place it held stays in the queue, empty, as Linux's consumed
//     skb: a read that has bytes stops there unless another
//     out-of-band byte waits, one that has none steps over it;
//   - SIOCATMARK says the next read starts at the mark; poll gives
//     POLLPRI while a byte waits;
//   - SIOCINQ counts the bytes queued and the byte until MSG_OOB takes
//     it; one a read skipped stays counted, as Linux's inq_len does;
//   - MSG_WAITALL goes on past the mark as a new read would, stepping
//     over the byte (Linux reads "abde" of "ab", "c" out of band, "de").
//
// The byte and the empty places stay in the receive ring, where the
// charge, credentials and descriptors of the bytes are kept by
// position; a reader drops them from there when it steps over them.
// A datagram or seqpacket socket answers EOPNOTSUPP, as Linux.

// unixOOB is a stream receiver's out-of-band state, made when the first
// byte comes or SO_OOBINLINE is set.
type unixOOB struct {
	at     int64   // the pending byte's stream position + 1; 0: none
	holes  []int64 // positions of bytes MSG_OOB took, still in the ring, ascending
	inline bool    // SO_OOBINLINE
	ghost  int     // skipped bytes SIOCINQ still counts
}

// oobState is e's, made on first use (e.mu held).
func (e *unixEP) oobState() *unixOOB {
	if e.oob == nil {
		e.oob = &unixOOB{}
	}
	return e.oob
}

// setOOBInline is SO_OOBINLINE on an AF_UNIX socket.
func (e *unixEP) setOOBInline(on bool) {
	e.mu.Lock()
	if on || e.oob != nil {
		e.oobState().inline = on
	}
	e.mu.Unlock()
}

// isHole says pos is a place MSG_OOB emptied.
func (o *unixOOB) isHole(pos int64) bool {
	_, ok := slices.BinarySearch(o.holes, pos)
	return ok
}

// stopAfter is where a read from pos must stop or step over something:
// the next place MSG_OOB emptied, or the pending byte; -1: nowhere.
func (o *unixOOB) stopAfter(pos int64) int64 {
	at := int64(-1)
	if o.at != 0 && o.at-1 > pos {
		at = o.at - 1
	}
	if i, _ := slices.BinarySearch(o.holes, pos+1); i < len(o.holes) && (at < 0 || o.holes[i] < at) {
		at = o.holes[i]
	}
	return at
}

// oobLead settles what a read finds where it starts, at skip bytes past
// the head (e.mu held), as manage_oob: emptied places and, without
// SO_OOBINLINE, the pending byte are stepped over (dropped from the
// ring unless peeking), and a read that starts on the pending byte
// takes the mark away. A read that continues one that took bytes
// (cont) stops at the mark or at an emptied place with none pending.
// It returns the new skip, the charge freed by what it dropped, and
// whether the read must stop with nothing.
func (e *unixEP) oobLead(skip int, peek, cont bool) (int, int, bool) {
	o := e.oob
	freed := 0
	for skip < e.rx.n {
		pos := e.rxBase + int64(skip)
		switch {
		case o.isHole(pos):
			if cont && o.at == 0 {
				return skip, freed, true
			}
			if peek {
				skip++
				continue
			}
			// Not peeking, the read starts at the head, so this is the
			// first place left.
			o.holes = slices.Delete(o.holes, 0, 1)
			freed += e.dropHead()
			continue
		case o.at == pos+1:
			if cont {
				return skip, freed, true
			}
			if peek {
				if !o.inline {
					skip++
				}
				return skip, freed, false
			}
			o.at = 0
			if !o.inline {
				o.ghost++
				freed += e.dropHead()
			}
		}
		break
	}
	return skip, freed, false
}

// dropHead drops the ring's first byte, stepped over by a read, with
// what came with it; it returns the charge freed (e.mu held).
func (e *unixEP) dropHead() int {
	freed := e.consume(1)
	for len(e.marks) > 0 && e.marks[0].end <= e.rxBase {
		releaseRefs(e.popMark()) // sent with the byte: gone with it
	}
	return freed
}

// recvOOB is recv with MSG_OOB: the pending byte, which a peek leaves;
// 1 even into an empty buffer, as Linux.
func (e *unixEP) recvOOB(b []byte, peek bool) (int, error) {
	if e.typ != SOCK_STREAM {
		return 0, syscall.EOPNOTSUPP
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.oob
	if e.state == unixListening || e.state == unixUnconnected || o == nil || o.inline || o.at == 0 {
		return 0, syscall.EINVAL
	}
	pos := o.at - 1
	if len(b) > 0 {
		e.rx.peek(b[:1], int(pos-e.rxBase))
	}
	if !peek {
		o.at = 0
		o.holes = append(o.holes, pos)
	}
	return 1, nil
}

// atMark is SIOCATMARK on an AF_UNIX socket: the first queued byte is
// the pending one, or an emptied place with none pending or the pending
// one right after it.
func (e *unixEP) atMark() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.oob
	if o == nil || e.rx.n == 0 {
		return 0
	}
	head := e.rxBase
	return b2i(o.at == head+1 || o.isHole(head) && (o.at == 0 || o.at == head+2))
}

// oobInq is what SIOCINQ counts beyond the ring's bytes (e.mu held).
func (e *unixEP) oobInq() int {
	if o := e.oob; o != nil {
		return o.ghost - len(o.holes)
	}
	return 0
}

// unixOOBPeek says s is an AF_UNIX stream socket that has had
// out-of-band data: a peek may step over bytes that keep it readable.
func (s *Socket) unixOOBPeek() bool {
	e, ok := s.ep.(*unixEP)
	if !ok {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.oob != nil
}
