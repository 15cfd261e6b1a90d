package conformance

// Reasons for the differences that remain. "By design" and "host
// configuration" entries are expected to stay; every "sockstack bug"
// entry names the package whose owner has to fix it, and its case starts
// to agree (and is reported as removable) once it is fixed.
const (
	rNoIPv6       = "by design for now: sockstack has no IPv6 (socket(AF_INET6) is EAFNOSUPPORT)"
	rJiffies      = "host kernel detail: Linux keeps socket timeouts in jiffies (HZ=250 here, 4 ms steps); sockstack keeps the exact duration"
	rCongDefault  = "host configuration: the kernel's default congestion control is net.ipv4.tcp_congestion_control (bbr here); sockstack's default is cubic"
	rLateConnect  = "Linux quirk: after a non-blocking connect completes the socket stays SS_CONNECTING until the next connect(), which returns 0; sockstack already counts it connected (EISCONN), like a socket connected by a blocking connect"
	rUnspecTCP    = "by design (socket/inet.go): connect(AF_UNSPEC) on a stream socket is refused with EAFNOSUPPORT; Linux disconnects (a no-op on an unconnected socket)"
	rMSS          = "kernel detail: Linux reports mss_cache, which it bounds to half the largest window the peer advertised (tcp_bound_to_half_wnd), so 32741/32768 on loopback; sockstack reports the negotiated MSS less TCP options (65483)"
	rBadType      = "sockstack bug (socket): socket() with an unknown type (>= SOCK_MAX) is EINVAL in Linux, ESOCKTNOSUPPORT in sockstack"
	rBindUnspec   = "sockstack bug (socket): Linux accepts bind(AF_UNSPEC) with INADDR_ANY on an AF_INET socket for compatibility; sockstack returns EAFNOSUPPORT"
	rUDPPort0     = "sockstack bug (stack/dgram.go): Linux reports ENOTCONN from getpeername when the connected port is 0 and sendto port 0 fails with EINVAL; sockstack sends"
	rUDPDisc      = "sockstack bug (stack/dgram.go): connect(AF_UNSPEC) on a UDP socket that was bound implicitly by connect releases the port and address in Linux (getsockname 0.0.0.0:0); sockstack keeps them"
	rUDPOOB       = "sockstack bug (socket/socket.go RecvMsg): MSG_OOB is rejected with EINVAL for every socket; Linux ignores it on UDP (here: EAGAIN on an empty socket) and only TCP reports EINVAL"
	rShutRdData   = "sockstack bug (tcp): after SHUT_RD Linux still returns data that arrives later; sockstack returns 0 (EOF)"
	rShutRdwrRST  = "sockstack bug (tcp): data arriving after SHUT_RDWR (receive side closed) makes Linux reset the connection (recv ECONNRESET, then getpeername/shutdown ENOTCONN); sockstack ignores it and returns EOF"
	rUDPShutRd    = "sockstack bug (stack/dgram.go): a non-blocking recv on a UDP socket shut for reading is EAGAIN in Linux, 0 in sockstack"
	rBacklog      = "sockstack bug (tcp): when the accept queue is full (backlog+1 entries) Linux drops the client's SYN (the client stays in SYN_SENT); sockstack completes every handshake although accept only returns backlog+1 connections"
	rBindToDevice = "sockstack bug (socket): SO_BINDTODEVICE is not implemented (ENOPROTOOPT); Linux binds to \"lo\" and fails ENODEV for an unknown device"
	rTCPOptOnUDP  = "sockstack bug (socket/sockopt.go): setsockopt(SOL_TCP) on a UDP socket is ENOPROTOOPT in Linux, EOPNOTSUPP in sockstack (getsockopt agrees: EOPNOTSUPP)"
	rMcastTCP     = "sockstack bug (socket/sockopt.go): IP_ADD_MEMBERSHIP on a TCP socket is EPROTO in Linux, EINVAL in sockstack"
	rRawName      = "sockstack bug (socket/stack): getsockname of a raw socket reports the protocol as the port in Linux (inet_num = protocol); sockstack reports 0"
	rFlagOpts     = "sockstack bug (socket/sockopt.go): the option is accepted but not stored, so getsockopt does not return the value set (or ENOPROTOOPT); Linux stores every SOL_SOCKET flag on every socket"
	rBufNeg       = "sockstack bug (socket, tcp, stack): Linux takes a negative SO_RCVBUF/SO_SNDBUF as a huge unsigned value and clamps it to the maximum (doubled); sockstack TCP fails EINVAL and UDP clamps to the minimum"
	rLowat        = "sockstack bug (socket): SO_RCVLOWAT/SO_SNDLOWAT are not implemented (ENOPROTOOPT); Linux supports SO_RCVLOWAT (negative means INT_MAX) and reads SO_SNDLOWAT as 1 (set: ENOPROTOOPT)"
	rLingerUDP    = "sockstack bug (socket/sockopt.go): SO_LINGER on a UDP socket is accepted but not stored; Linux stores it"
	rTimeoNeg     = "sockstack bug (socket/sockopt.go): a negative SO_RCVTIMEO is accepted by Linux as 0 (no timeout, with a kernel warning); sockstack fails EDOM (Linux's EDOM is only for tv_usec out of range)"
	rHdrinclUDP   = "sockstack bug (socket/sockopt.go): getsockopt(IP_HDRINCL) works on any inet socket in Linux (0); sockstack fails ENOPROTOOPT for non-raw sockets (set agrees: ENOPROTOOPT)"
	rGetUnknownIP = "sockstack bug (socket/sockopt.go): Linux's getsockopt answers EOPNOTSUPP for an unknown level; sockstack ENOPROTOOPT (setsockopt agrees: ENOPROTOOPT)"
)

var knownDifferences = map[string]string{
	"socket/inet6 stream":                            rNoIPv6,
	"sockopt/SO_RCVTIMEO rounding":                   rJiffies,
	"opt/tcp/TCP_CONGESTION default":                 rCongDefault,
	"opt/tcp/TCP_CONGESTION=\"nosuchcc\"":            rCongDefault,
	"connect/tcp non-blocking to listener, SO_ERROR": rLateConnect,
	"connect/tcp AF_UNSPEC on unconnected":           rUnspecTCP,
	"sockopt/TCP_MAXSEG connected":                   rMSS,
	"shutdown/tcp SHUT_RD then both views":           rShutRdData,
	"shutdown/tcp SHUT_RDWR then both views":         rShutRdwrRST,
	"shutdown/udp connected SHUT_RD":                 rUDPShutRd,
	"shutdown/udp connected SHUT_RDWR":               rUDPShutRd,
	"listen/backlog overflow":                        rBacklog,
	"listen/backlog 0":                               rBacklog,
	"listen/backlog 3":                               rBacklog,
	"sockopt/TCP on udp socket":                      rTCPOptOnUDP,
	"multicast/join on tcp socket":                   rMcastTCP,
	"opt/tcp/SO_RCVLOWAT=-1":                         rLowat,
	"opt/udp/SO_LINGER=linger{true -1}":              rLingerUDP,
}
