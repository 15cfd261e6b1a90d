// Package socket is the BSD socket interface over a sockstack host:
// socket, bind, listen, accept, connect, send, recv, sendto, recvfrom,
// shutdown, close, setsockopt, with blocking, non-blocking and timeout
// modes exactly like Python's socket module, and a poller.
//
// The constants carry Linux's values so that code written against the
// kernel reads the same, and errors are syscall.Errno values
// (errors.Is(err, syscall.ECONNREFUSED) works).
package socket

// Address families.
const (
	AF_UNSPEC = 0
	AF_UNIX   = 1
	AF_INET   = 2
	AF_INET6  = 10
	AF_PACKET = 17
)

// Socket types.
const (
	SOCK_STREAM    = 1
	SOCK_DGRAM     = 2
	SOCK_RAW       = 3
	SOCK_SEQPACKET = 5

	// Flags or'ed into socket(2)'s, socketpair(2)'s type and accept4(2)'s
	// flags, Linux's values.
	SOCK_NONBLOCK = 0x800
	SOCK_CLOEXEC  = 0x80000
	sockTypeMask  = 0xf
)

// Protocols.
const (
	IPPROTO_IP   = 0
	IPPROTO_ICMP = 1
	IPPROTO_IGMP = 2
	IPPROTO_TCP  = 6
	IPPROTO_UDP  = 17
	IPPROTO_RAW  = 255
)

// Option levels and names (Linux values).
const (
	SOL_SOCKET = 1
	SOL_IP     = 0
	SOL_TCP    = 6
	SOL_UDP    = 17

	SO_DEBUG        = 1
	SO_REUSEADDR    = 2
	SO_TYPE         = 3
	SO_ERROR        = 4
	SO_DONTROUTE    = 5
	SO_BROADCAST    = 6
	SO_SNDBUF       = 7
	SO_RCVBUF       = 8
	SO_KEEPALIVE    = 9
	SO_OOBINLINE    = 10
	SO_LINGER       = 13
	SO_REUSEPORT    = 15
	SO_RCVLOWAT     = 18
	SO_SNDLOWAT     = 19
	SO_RCVTIMEO     = 20
	SO_SNDTIMEO     = 21
	SO_BINDTODEVICE = 25
	SO_ACCEPTCONN   = 30
	SO_PROTOCOL     = 38
	SO_DOMAIN       = 39

	IP_TOS             = 1
	IP_TTL             = 2
	IP_HDRINCL         = 3
	IP_MULTICAST_IF    = 32
	IP_MULTICAST_TTL   = 33
	IP_MULTICAST_LOOP  = 34
	IP_ADD_MEMBERSHIP  = 35
	IP_DROP_MEMBERSHIP = 36

	TCP_NODELAY    = 1
	TCP_MAXSEG     = 2
	TCP_CORK       = 3
	TCP_KEEPIDLE   = 4
	TCP_KEEPINTVL  = 5
	TCP_KEEPCNT    = 6
	TCP_INFO       = 11
	TCP_CONGESTION = 13
)

// Message flags.
const (
	MSG_OOB      = 0x1
	MSG_PEEK     = 0x2
	MSG_TRUNC    = 0x20
	MSG_DONTWAIT = 0x40
	MSG_WAITALL  = 0x100
	MSG_NOSIGNAL = 0x4000
)

// Shutdown directions.
const (
	SHUT_RD   = 0
	SHUT_WR   = 1
	SHUT_RDWR = 2
)

// SOMAXCONN is the default cap on listen backlogs.
const SOMAXCONN = 4096
