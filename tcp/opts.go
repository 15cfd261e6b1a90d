package tcp

import (
	"sync"
	"time"
)

// epOpts holds the socket options most connections leave at their
// defaults. An endpoint points at a shared value: its Protocol's
// defaults, its listener's options, or an entry of the Protocol's table
// of option sets, so that a million connections dialed with the same
// options (net.Dialer sets keepalive times on every connection) hold
// one copy, not 80 bytes each (issue 10). A value is never written once
// an endpoint points at it.
type epOpts struct {
	linger, keepIdle, keepIntvl time.Duration
	userTimeout                 time.Duration // TCP_USER_TIMEOUT; 0: the retries rules
	keepCnt, userMSS            int32         // bounded: 1..127 and 0 or 88..65495
	userSndBuf, userRcvBuf      int
	ccName                      string
	ttl, tos                    uint8
	hopZero                     bool // ttl 0 set (IPV6_UNICAST_HOPS 0), not the default
	lingerOn                    bool
	recvErr4, recvErr6          bool // IP_RECVERR, IPV6_RECVERR (input.go)
	rfc4884v4, rfc4884v6        bool // IP_RECVERR_RFC4884, IPV6_RECVERR_RFC4884 (errqueue.go)
	// ipOpts is IP_OPTIONS (ipopts.go): a value the host compiled; a
	// set holding one is never interned (shareOpts).
	ipOpts IPOptions
	// ext6 is the IPv6 extension headers (ext6.go); like ipOpts, a set
	// holding them is never interned.
	ext6 IPv6Ext
	mark uint32 // SO_MARK (mark.go)
	dev  int32  // SO_BINDTODEVICE's interface index (bindtodev.go)
	// TCP-level options of tcpopts.go, in Linux's units.
	windowClamp  int32  // TCP_WINDOW_CLAMP; 0: none
	notsentLowat uint32 // TCP_NOTSENT_LOWAT; 0: no bound
	linger2      int32  // TCP_LINGER2: seconds, 0 the default, -1 none
	fastOpen     int32  // TCP_FASTOPEN's queue length (a listener's)
	synCnt       uint8  // TCP_SYNCNT; 0: the Config's
	deferAccept  uint8  // TCP_DEFER_ACCEPT as SYN-ACK retransmissions
	deferAcked   bool   // a deferring child dropped its client's bare ACK
	pingpong     bool   // TCP_QUICKACK 0: delayed-ACK ("pingpong") mode
	inq          bool   // TCP_INQ
	fastOpenConn bool   // TCP_FASTOPEN_CONNECT
	// rxStamp is the receive timestamp record (rxstamp.go); a set
	// holding one is the endpoint's own, never interned.
	rxStamp *rxStampCell
	// txStamp is the transmit timestamp state (txstamp.go); like
	// rxStamp, a set holding it is the endpoint's own.
	txStamp *txStampState
}

// maxSharedOpts bounds the table of shared option sets: past it a new
// set is the endpoint's own (counted in OptsUnshared).
const maxSharedOpts = 256

// optsTable interns option sets. Its lock is a leaf, taken under
// endpoint locks.
type optsTable struct {
	mu sync.Mutex
	m  map[epOpts]*epOpts
}

// setOpt changes the endpoint's options through f on a copy, then
// points the endpoint at the shared set equal to the result. Setting
// options is rare: the copy and the lookup cost nothing that matters.
func (e *Endpoint) setOpt(f func(epOpts) epOpts) {
	// By value, not through a pointer: a pointer handed to f would move
	// the copy to the heap on every call, garbage that fragments the
	// heap of many connections (perf's TestMemPerPair).
	e.epOpts = e.p.shareOpts(f(*e.epOpts))
}

func (p *Protocol) shareOpts(o epOpts) *epOpts {
	if o == p.defOpts {
		return &p.defOpts
	}
	if o.ipOpts != nil || o.ext6 != nil || o.rxStamp != nil || o.txStamp != nil {
		// IP_OPTIONS values are rarely shared (an accepted socket's
		// are its SYN's): interned, they would fill the table.
		s := new(epOpts)
		*s = o
		return s
	}
	t := &p.opts
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.m[o]; s != nil {
		return s
	}
	s := new(epOpts)
	*s = o
	if len(t.m) >= maxSharedOpts {
		p.st.OptsUnshared.Add(1)
		return s
	}
	if t.m == nil {
		t.m = make(map[epOpts]*epOpts)
	}
	t.m[o] = s
	return s
}
