package conformance

// Known differences of the IPv6 extension header cases on TCP
// (ext6_tcp_cases.go): Linux quirks sockstack does not copy.
const (
	rExt6Removed = "Linux quirk: removing a TCP socket's last IPv6 extension header leaves its MSS short by the headers' room (ipv6_update_options syncs icsk_ext_hdr_len only when a header is left); sockstack gives the whole MSS back"
	rExt6Accept  = "Linux quirk: an accepted TCP socket's header change does not resync its MSS (ipv6_update_options skips sockets whose inet_daddr is LOOPBACK4_IPV6, as tcp_v6_syn_recv_sock leaves an accepted IPv6 socket's), so its segments may outgrow the MTU; sockstack cuts the MSS as for a connected socket"
	rExt6Rthdr   = "Linux quirk: with IPV6_RTHDRDSTOPTS and no routing header Linux's TCP connection does not come up (connect times out on this kernel, 6.18); sockstack connects, sends no such header and takes its room off the MSS as Linux's icsk_ext_hdr_len does"
	rExt6Mapped  = "Linux quirk: a dual-stack TCP socket connected to a v4-mapped peer takes the room of IPv6 headers set after the connect off its MSS (ipv6_update_options) though it never sends them; sockstack counts no IPv6 headers towards an IPv4 peer"
)

func init() {
	knownDifferences["ext6/tcp6 MSS after the last header is removed"] = rExt6Removed
	knownDifferences["ext6/tcp6 accepted socket sets a header"] = rExt6Accept
	knownDifferences["ext6/tcp6 IPV6_RTHDRDSTOPTS"] = rExt6Rthdr
	knownDifferences["ext6/tcp6 to a v4-mapped peer, set connected"] = rExt6Mapped
}
