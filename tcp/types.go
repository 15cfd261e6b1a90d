package tcp

import (
	"net/netip"
	"syscall"
	"time"
)

// Config tunes a Protocol. Zero values mean Linux-like defaults.
type Config struct {
	MSL               time.Duration // TIME_WAIT lasts 2*MSL; default 30s
	SOMAXCONN         int           // backlog cap; default 4096
	SendBuf, RecvBuf  int           // initial buffer sizes; default 16 KiB / 128 KiB
	MaxRecvBuf        int           // receive auto-tuning limit; default 6 MiB
	MaxSendBuf        int           // send auto-tuning limit; default 4 MiB
	CongestionControl string        // "cubic" (default) or "newreno"
	SynRetries        int           // default 6
	Retries2          int           // default 15
	Seed              []byte        // ISN / SYN cookie key; random if nil
	DelayedAckTimeout time.Duration // default 40ms
	// SynAckRetries bounds SYN-ACK retransmissions (default 5, like Linux).
	SynAckRetries int
	// KeepIdle, KeepIntvl, KeepCnt are the keepalive defaults for new
	// endpoints (2h, 75s, 9).
	KeepIdle, KeepIntvl time.Duration
	KeepCnt             int
	// NoSynCookies disables SYN cookies (a full SYN queue then drops).
	NoSynCookies bool
	// NoTimeWaitReuse stops Connect from reusing a 4-tuple held in
	// TIME_WAIT (by default it may, when timestamps make it safe, like
	// net.ipv4.tcp_tw_reuse=1).
	NoTimeWaitReuse bool

	// tcpsec: hardening limits (issue 8).
	// InvalidRateLimit is the per-connection minimum interval between
	// ACKs answering invalid segments (challenge ACKs, out-of-window and
	// PAWS dup ACKs); default 500ms like tcp_invalid_ratelimit.
	InvalidRateLimit time.Duration
	// NoTimestampOffset sends TSval as the stack's uptime in ms; by
	// default each 4-tuple gets a keyed-hash offset (RFC 7323 5.4).
	NoTimestampOffset bool
	// MaxTimeWait caps TIME_WAIT records (tcp_max_tw_buckets; default
	// 32768); beyond it a closing connection skips TIME_WAIT (counted).
	MaxTimeWait int
	// MaxOrphans caps connections closed by the user but not finished
	// (tcp_max_orphans; default 16384); beyond it Close resets (counted).
	MaxOrphans int
	// MemPressure and MemLimit bound the bytes of all TCP buffers
	// (tcp_mem): above MemPressure receive windows and buffers stop
	// growing; above MemLimit incoming data that needs more memory is
	// dropped (counted). Defaults 256 MiB and 384 MiB.
	MemPressure, MemLimit int64

	// ECN chooses when connections use ECN (RFC 3168); the zero value
	// accepts it when the peer asks and does not ask (tcp_ecn=2).
	ECN ECNMode
}

func (c *Config) setDefaults() {
	if c.MSL <= 0 {
		c.MSL = 30 * time.Second
	}
	if c.SOMAXCONN <= 0 {
		c.SOMAXCONN = 4096
	}
	if c.SendBuf <= 0 {
		c.SendBuf = 16 << 10
	}
	if c.RecvBuf <= 0 {
		c.RecvBuf = 128 << 10
	}
	if c.MaxRecvBuf <= 0 {
		c.MaxRecvBuf = 6 << 20
	}
	if c.MaxSendBuf <= 0 {
		c.MaxSendBuf = 4 << 20
	}
	c.MaxRecvBuf = max(c.MaxRecvBuf, c.RecvBuf)
	c.MaxSendBuf = max(c.MaxSendBuf, c.SendBuf)
	if c.CongestionControl == "" {
		c.CongestionControl = "cubic"
	}
	if c.SynRetries <= 0 {
		c.SynRetries = 6
	}
	if c.SynAckRetries <= 0 {
		c.SynAckRetries = 5
	}
	if c.Retries2 <= 0 {
		c.Retries2 = 15
	}
	if c.DelayedAckTimeout <= 0 {
		c.DelayedAckTimeout = 40 * time.Millisecond
	}
	if c.KeepIdle <= 0 {
		c.KeepIdle = 2 * time.Hour
	}
	if c.KeepIntvl <= 0 {
		c.KeepIntvl = 75 * time.Second
	}
	if c.KeepCnt <= 0 {
		c.KeepCnt = 9
	}
	c.setSecDefaults()
}

// ErrorKind classifies an error reported by the IP layer (ICMP or
// neighbour resolution) for a segment TCP sent.
type ErrorKind int

const (
	ErrPortUnreach     ErrorKind = iota + 1 // ICMP port unreachable: hard error
	ErrProtoUnreach                         // ICMP protocol unreachable: hard error
	ErrHostUnreach                          // ICMP host unreachable: soft once established
	ErrNetUnreach                           // ICMP net unreachable: soft once established
	ErrFragNeeded                           // ICMP fragmentation needed, with an MTU
	ErrNeighbor                             // ARP failed for the next hop
	ErrTimeExceeded                         // TTL expired in transit: soft
	ErrSourceQuench                         // ignored (RFC 6633)
	ErrAdminProhibited                      // ICMP communication administratively prohibited
	ErrParamProblem                         // ICMP parameter problem: EPROTO
)

// NetError is an error the IP layer reports about a segment TCP sent.
type NetError struct {
	Kind ErrorKind
	// Errno is what the socket is told: Linux's errno for the ICMP type
	// and code (icmp_err_convert, icmpv6_err_convert), which the stack
	// knows in full; 0 takes Kind's.
	Errno syscall.Errno
	MTU   int // of a fragmentation needed or packet too big

	// What IP_RECVERR's error queue shows (errqueue.go); zero for a
	// neighbour failure.
	Origin     uint8 // SO_EE_ORIGIN_ICMP (2) or SO_EE_ORIGIN_ICMP6 (3)
	Type, Code uint8
	Info       uint32     // ee_info: the MTU, a parameter problem's pointer
	Offender   netip.Addr // the message's sender
	Quote      []byte     // the quoted packet from its TCP header on; borrowed
	Ctl        ErrCtl     // the ICMP packet and its RFC 4884 structure (errqueue.go)
}

// errno is the error e reports: Errno, else the one Linux gives Kind.
func (ne *NetError) errno() syscall.Errno {
	if ne.Errno != 0 {
		return ne.Errno
	}
	switch ne.Kind {
	case ErrPortUnreach:
		return syscall.ECONNREFUSED
	case ErrProtoUnreach:
		return syscall.ENOPROTOOPT
	case ErrParamProblem:
		return syscall.EPROTO
	case ErrNetUnreach:
		return syscall.ENETUNREACH
	case ErrHostUnreach, ErrNeighbor, ErrAdminProhibited, ErrTimeExceeded:
		return syscall.EHOSTUNREACH
	}
	return 0
}

// State is a TCP connection state (RFC 9293).
type State uint8

const (
	StateClosed State = iota
	StateListen
	StateSynSent
	StateSynRcvd
	StateEstablished
	StateFinWait1
	StateFinWait2
	StateCloseWait
	StateClosing
	StateLastAck
	StateTimeWait
)

var stateNames = [...]string{"CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"}

// String gives the name netstat uses.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// StatsSnapshot holds the protocol counters, named like netstat -s / nstat.
type StatsSnapshot struct {
	ActiveOpens, PassiveOpens, AttemptFails, EstabResets, CurrEstab    uint64
	InSegs, OutSegs, RetransSegs, InErrs, OutRsts, InRsts              uint64
	ListenOverflows, ListenDrops                                       uint64
	SynCookiesSent, SynCookiesRecv, SynCookiesFailed                   uint64
	OFOQueueDrops, OFOQueued                                           uint64
	ChallengeACKs, ChallengeACKsLimited, PAWSDrops                     uint64
	FastRetrans, SACKRecovery, RenoRecovery, Timeouts                  uint64
	TimeWaitReused, KeepaliveTimeouts, KeepaliveProbes                 uint64
	DelayedACKs, ZeroWindowProbes, OutOfWindowDrops, NoPortDrops       uint64
	SACKBlocksRecv, DSACKsRecv, SACKRetrans, LostRetransmit            uint64
	PMTUUpdates, ICMPErrors, AbortOnData, AbortOnClose, AbortOnTimeout uint64
	AbortOnLinger, OutputErrors, SynRetransmits                        uint64
	TLPProbes, RACKReoTimeouts                                         uint64 // tail loss probes sent; RACK reordering timer expiries
	// Segments a full link queue refused (kept unsent, not in flight);
	// wake-ups that resumed sending once the link had room (room.go).
	LinkQueueFull, LinkRoomWakeups uint64
	// ICMP errors not queued for MSG_ERRQUEUE: the socket's error queue
	// was full (errqueue.go).
	ErrQueueFull uint64
	// Errors queued with a malformed RFC 4884 extension structure
	// (SO_EE_RFC4884_FLAG_INVALID), as stack's ICMP.RFC4884Invalid
	// counts a datagram socket's.
	RFC4884Invalid uint64

	// tcpsec: hardening counters (issue 8), named like nstat.
	ACKSkippedSeq, ACKSkippedPAWS, ACKSkippedTimeWait uint64 // rate-limited dup ACKs
	TimeWaitOverflow, TimeWaitRecords                 uint64 // tw bucket table overflow; records now
	// Option sets an endpoint keeps to itself because the table of
	// shared sets was full (opts.go, maxSharedOpts).
	OptsUnshared                           uint64
	AbortOnMemory, Orphans                 uint64 // orphans reset over MaxOrphans; orphans now
	MemoryPressures, RcvMemDrops, MemBytes uint64 // entries into pressure; data dropped at MemLimit; buffer bytes now
	DSACKOldSent, DSACKOfoSent             uint64 // D-SACKs sent for old / out-of-order duplicates
	DSACKUndo                              uint64 // loss episodes undone by D-SACKs

	// perf: ECN (issue 10).
	InCEPkts          uint64 // segments received with CE on an ECN connection
	ECNCwndReductions uint64 // cwnd reductions in answer to ECE

	// Lent receive buffers: payloads kept in a link's buffer instead of
	// copied, and payloads copied because the connection already held
	// maxLent such buffers.
	LentSegs, LentQueueFull uint64
	// TProxyNoListener counts diverted segments with no IP_TRANSPARENT
	// listener on the rule's port (answered with a reset).
	TProxyNoListener uint64
	// AcksHeld counts ACKs for a hole still open at a link batch's end
	// that waited for the next batch or the link's idle call (Batch.SetHold).
	AcksHeld uint64
	// DeferAcceptDrops counts handshake-completing ACKs without data that
	// a TCP_DEFER_ACCEPT listener's connection ignored (Linux's
	// TCPDeferAcceptDrop).
	DeferAcceptDrops uint64
	// DeferredSegs counts segments queued to leave after the endpoint's
	// lock (a route whose link never refuses a frame); FlushHandOffs the
	// flushes that went past the unlocker's budget and went on in the
	// queue's own goroutine.
	DeferredSegs, FlushHandOffs uint64
	// SndReleaseHeld counts ACKs whose acknowledged bytes stayed in the
	// send ring until the flusher was done, because a queued segment
	// (a retransmission) still pointed to them (txdefer.go).
	SndReleaseHeld uint64
}

// ConnInfo is one row of the socket table.
type ConnInfo struct {
	Local, Remote netip.AddrPort
	Inet6         bool // an AF_INET6 socket's (netstat's tcp6)
	State         State
	SendQ, RecvQ  int // bytes not yet acknowledged / not yet read
}

// Info is TCP_INFO-like introspection of one endpoint.
type Info struct {
	State                State
	CongestionControl    string
	RTT, RTTVar, RTO     time.Duration
	SndCwnd, SndSsthresh uint32 // segments, like tcpi_snd_cwnd
	CwndBytes            int
	BytesInFlight        int
	SegsInFlight         int
	Retransmits          int // consecutive timeouts for the current segment
	TotalRetrans         uint64
	SackedBytes          int
	LostBytes            int
	RcvWnd, SndWnd       int
	RcvSpace             int // current receive buffer (auto-tuned)
	SndBuf               int
	SndMSS, RcvMSS       int
	PMTU                 int
	SndWScale, RcvWScale int
	TimestampsOK, SACKOK bool
	BytesAcked           uint64
	BytesReceived        uint64
	BytesSent            uint64
	BytesRetrans         uint64
	SegsOut, SegsIn      uint64
	DSACKDups            uint64
	LastDataSent         time.Duration // since
	LastDataRecv         time.Duration
	LastAckRecv          time.Duration
	Probes               int // zero window / keepalive probes unanswered
	Backoff              int
}
