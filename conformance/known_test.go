package conformance

// Reasons for the differences that remain. "By design", "host
// configuration" and kernel-detail entries are expected to stay; every
// "sockstack bug" entry names the package whose owner has to fix it.
// Each entry's sockstack transcript is pinned in testdata/known (see
// checkPin): the test fails when that answer changes, and when the case
// starts to agree with Linux (the entry must then go).
const (
	rJiffies     = "host kernel detail: Linux keeps socket timeouts in jiffies (HZ=250 here, 4 ms steps); sockstack keeps the exact duration"
	rCongDefault = "host configuration: the kernel's default congestion control is net.ipv4.tcp_congestion_control (bbr here); sockstack's default is cubic"
	rLateConnect = "Linux quirk: after a non-blocking connect completes the socket stays SS_CONNECTING until the next connect(), which returns 0; sockstack already counts it connected (EISCONN), like a socket connected by a blocking connect"
	rUnspecTCP   = "by design (socket/inet.go): connect(AF_UNSPEC) on a stream socket is refused with EAFNOSUPPORT; Linux disconnects (a no-op on an unconnected socket)"
	rMSS         = "kernel detail: Linux reports mss_cache, which it bounds to half the largest window the peer advertised (tcp_bound_to_half_wnd), so 32741/32768 on loopback; sockstack reports the negotiated MSS less TCP options (65483)"
	rLowat       = "host configuration: Linux's TCP caps SO_RCVLOWAT at half of net.ipv4.tcp_rmem[2] (33554432 here, so 16777216); sockstack at half of its own limit, tcp.Config.MaxRecvBuf (6 MiB by default, so 3145728)"
	rAutoFlow    = "host configuration: the kernel labels the flows of its own ICMPv6 errors (net.ipv6.auto_flowlabels=1 here, a hash of the flow), so IPV6_FLOWINFO reports a label; sockstack sends no automatic flow labels, the flow information word is 0 and Linux gives no IPV6_FLOWINFO message then"
	rLingerUDP   = "Linux quirk: Linux keeps the linger time in jiffies and a negative l_linger does not survive the conversion back (getsockopt returns a garbage number); sockstack returns the value set"
)

var knownDifferences = map[string]string{
	"sockopt/SO_RCVTIMEO rounding":                         rJiffies,
	"opt/tcp/TCP_CONGESTION default":                       rCongDefault,
	"opt/tcp/TCP_CONGESTION=\"nosuchcc\"":                  rCongDefault,
	"connect/tcp non-blocking to listener, SO_ERROR":       rLateConnect,
	"connect/tcp AF_UNSPEC on unconnected":                 rUnspecTCP,
	"sockopt/TCP_MAXSEG connected":                         rMSS,
	"opt/tcp/SO_RCVLOWAT=-1":                               rLowat,
	"rcvlowat/tcp capped at half of tcp_rmem[2]":           rLowat,
	"opt/udp/SO_LINGER=linger{true -1}":                    rLingerUDP,
	"recvopts/recverr udp6 ::1 closed port, IPV6_FLOWINFO": rAutoFlow,
}
