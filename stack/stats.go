package stack

import (
	"reflect"
	"sync/atomic"
)

// Counter is one statistic.
type Counter = atomic.Uint64

// Stats are the stack's counters, grouped per protocol like `netstat -s`.
// Every drop has a counter naming its reason.
type Stats struct {
	Link struct {
		InFrames, OutFrames Counter
		InMalformed         Counter // shorter than an Ethernet header
		InNotForUs          Counter // unicast to another MAC, or a group we did not join
		InUnknownEtherType  Counter
		OutErrors           Counter // the endpoint refused a frame
		OutQueueFull        Counter
		// Offloads (gso.go, gro.go).
		OutGSOFrames Counter // super-segments handed whole to a link that carries them
		OutGSOSegs   Counter // segments cut in software in front of a link that cannot
		// OutVecFrames: TCP frames whose payload the link's write gathered
		// from the send ring, not copied into a frame (txvec.go).
		OutVecFrames Counter
		// OutGSOTailDrops: super-segments cut in software whose first
		// segments the link took and whose rest its full queue refused:
		// what left counts as sent, the rest as lost on the wire.
		OutGSOTailDrops Counter
		InGSOFrames     Counter // super-segments received whole from a link that carries them
		InGROFrames     Counter // coalesced packets delivered (each from two or more segments)
		InGROSegs       Counter // segments that went into them
		InBadOffload    Counter // frames whose offload state did not match their bytes: dropped
	}
	ARP struct {
		InRequests, InReplies   Counter
		OutRequests, OutReplies Counter
		InMalformed             Counter
		InNotForUs              Counter
		Gratuitous              Counter // sent when an address is added
		ResolveFailures         Counter // no answer after the retries
		PendingDrops            Counter // packets dropped while waiting for resolution, any reason (the three below)
		PendingQueueFull        Counter // the neighbour's queue was full (ARPPendingLen / ARPPendingBytes): oldest dropped
		PendingGlobalFull       Counter // all neighbours together were full (ARPPendingTotal / ARPPendingTotalBytes): new dropped
		PendingResolveFailed    Counter // the neighbour never answered
		InMartian               Counter // impossible sender (127/8, 0/8, 224/4 and above, one of ours) or target (127/8, 224/4): dropped
		InUnsolicited           Counter // replies from neighbours we did not ask: no entry made (arp_accept=0)
		LocktimeIgnored         Counter // a different MAC for a reachable entry within ARPLocktime of its update
		CacheFull               Counter // entries refused because the cache was full
		IncompleteFull          Counter // resolutions refused: half the cache already waits for answers (RFC 6583)
		CacheEvictions          Counter
	}
	IP struct {
		InReceives     Counter
		InHdrErrors    Counter // all header errors; the reasons follow
		InTruncated    Counter
		InBadVersion   Counter
		InBadHeaderLen Counter
		InBadLength    Counter
		InCsumErrors   Counter
		InBadOptions   Counter
		InBadSource    Counter // martian source, any reason (the InMartianSrc* counters say which)
		InAddrErrors   Counter // not for us and not forwarding, or a martian destination
		// Martians (RFC 1122 3.2.1.3, RFC 1812 5.3.7), per reason.
		InMartianSrcLoopback  Counter // 127/8 source on a non-loopback NIC
		InMartianSrcZero      Counter // 0/8 source, outside the allowed 0.0.0.0 cases
		InMartianSrcBroadcast Counter // limited or a directed broadcast as source
		InMartianSrcMulticast Counter // 224/4 as source
		InMartianSrcClassE    Counter // 240/4 (not 255.255.255.255) as source
		InMartianSrcLocal     Counter // one of the NIC's own addresses as source, from the wire
		InMartianDstLoopback  Counter // 127/8 destination on a non-loopback NIC
		InMartianDstZero      Counter // 0/8 destination
		InMartianDstClassE    Counter // 240/4 (not 255.255.255.255) destination
		InSourceRouted        Counter // LSRR/SSRR dropped (accept_source_route=0)
		InUnknownProtos       Counter
		InDiscards            Counter
		InDelivers            Counter
		ForwDatagrams         Counter
		OutRequests           Counter
		OutNoRoutes           Counter
		OutDiscards           Counter
		OutTooBig             Counter // DF set and larger than the MTU (EMSGSIZE)
		TTLExceeded           Counter
		FragOKs               Counter
		FragCreates           Counter
		FragFails             Counter
		ReasmReqds            Counter
		ReasmOKs              Counter
		ReasmFails            Counter
		ReasmTimeout          Counter
		ReasmOverlaps         Counter
		ReasmDuplicates       Counter
		ReasmTooBig           Counter // would exceed 65,535 bytes
		ReasmMemoryDrops      Counter // global memory limit reached and nothing older to evict
		ReasmEvictions        Counter // oldest datagrams dropped to make room under the memory limit
		ReasmTooManyHoles     Counter // more than ReasmMaxRuns separate runs of data in one datagram
		ReasmBadFragment      Counter // inconsistent fragment (length not multiple of 8, ...)
		PMTUUpdates           Counter // path MTUs learnt from fragmentation-needed errors
		PMTUPlateaus          Counter // ... that carried MTU 0: RFC 1191 plateau used
		PMTUBelowMin          Counter // ... below PMTUMin: PMTUMin used, path locked (no DF)
		PMTUEvictions         Counter // entries dropped from the full path MTU cache
	}
	ICMP struct {
		InMsgs, InErrors, InCsumErrors Counter
		InEchos, InEchoReps            Counter
		InDestUnreachs, InTimeExcds    Counter
		InFragNeeded                   Counter
		InRedirects                    Counter // ignored by decision (docs/DECISIONS.md)
		InOther                        Counter
		InUnmatched                    Counter // errors that matched no socket
		OutMsgs                        Counter
		OutEchos, OutEchoReps          Counter
		OutDestUnreachs, OutTimeExcds  Counter
		OutParmProbs                   Counter
		OutErrors                      Counter // errors counted above that could not be sent (IcmpOutErrors)
		OutEchoOptionErrors            Counter // echo requests not answered: options left no consistent room (as Linux)
		OutRateLimited                 Counter // errors suppressed by a rate limit (the two below)
		OutRateLimitedGlobal           Counter // by the global bucket (icmp_msgs_per_sec)
		OutRateLimitedPeer             Counter // by the destination's bucket (icmp_ratelimit)
		RatePeerEvictions              Counter // destinations dropped from the full rate-limit table
		OutSuppressed                  Counter // errors not sent by rule (about ICMP errors, broadcasts, fragments)
		PingRcvbufErrors               Counter // echo replies dropped at a full ping socket queue
		ErrQueueFull                   Counter // IP_RECVERR errors not queued: the socket's receive buffer was full (errqueue.go)
		RFC4884Invalid                 Counter // errors a datagram socket queued with a malformed RFC 4884 extension structure (SO_EE_RFC4884_FLAG_INVALID)
	}
	UDP struct {
		InDatagrams  Counter
		NoPorts      Counter
		InErrors     Counter
		InCsumErrors Counter
		InBadLength  Counter
		RcvbufErrors Counter // receive queue full
		OutDatagrams Counter
		SndbufErrors Counter
		OutGSOErrors Counter // UDP_SEGMENT sends refused: segment over the MTU, over UDPMaxSegments
	}
	IGMP struct {
		OutReports, OutLeaves Counter
		InQueries, InReports  Counter
		InErrors              Counter
		InOther               Counter // not a query or a report (DVMRP, mtrace, ...)
		ReportsSuppressed     Counter // our pending report cancelled: another host reported the group
		ReportTimersShortened Counter // a query asked for a quicker answer than the time left
		MembershipLimit       Counter // joins refused: the socket already holds MaxMemberships groups (ENOBUFS)
		// Source-specific multicast (ssm.go).
		SourceLimit      Counter // source adds / filters refused past IGMPMaxMsf or MLDMaxMsf (ENOBUFS)
		InV3Queries      Counter // IGMPv3 queries
		InBadQueries     Counter // IGMP queries ignored: 9-11 octets, sources beyond the end (IGMPv3 mode; an older mode reads the first 8 octets), a general query with sources, a unicast group
		InV3Reports      Counter // other hosts' IGMPv3 reports (ignored)
		InBadV3Reports   Counter // IGMPv3 reports whose records run past the end
		OutV3Reports     Counter // IGMPv3 reports sent (state change and current state)
		RecordsTruncated Counter // a group record too large for the MTU: sources cut
		V1Compat         Counter // switches to IGMPv1 compatibility mode (a v1 query heard)
		V2Compat         Counter // switches to IGMPv2 compatibility mode
		MLDv1Compat      Counter // switches to MLDv1 compatibility mode
		MLDv2Queries     Counter // MLDv2 queries answered in MLDv2
		MLDBadQueries    Counter // MLD queries ignored: malformed, not link-local, no Router Alert or one whose value is not MLD's 0, hop limit not 1, sources in a general query, a unicast group
	}
	// IPv6 counters, named like Linux's /proc/net/snmp6 (Ip6*, Icmp6*).
	IP6 struct {
		InReceives, InDelivers Counter
		InHdrErrors            Counter // fixed header or extension header refused
		InTruncated            Counter
		InBadVersion           Counter
		InBadLength            Counter
		InExtLimit             Counter // more extension headers than IPv6MaxExtHeaders
		InOptionDrops          Counter // options refused: unknown with a drop action, too many, too much padding
		InRoutingHeader        Counter // routing header with segments left (type 0 included, RFC 5095)
		InAddrErrors           Counter // not for us, a group not joined, or a martian destination
		InBadSource            Counter // martian source (multicast, ::1 from the wire, v4-mapped, own address)
		InUnknownProtos        Counter
		InDiscards             Counter
		InTentative            Counter // to an address still under DAD (RFC 4862 5.4): dropped
		InAtomicFrags          Counter // fragment header with offset 0 and M=0, processed alone (RFC 6946)
		InIncompleteChain      Counter // first fragment without the whole header chain (RFC 7112)
		InNestedFrag           Counter // a fragment header inside a reassembled datagram
		OutRequests            Counter
		OutNoRoutes            Counter
		OutTooBig              Counter
		FragOKs, FragCreates   Counter
		FragFails              Counter
		PMTUUpdates            Counter // path MTUs learnt from Packet Too Big
		PMTUBelowMin           Counter // Packet Too Big below 1280: 1280 used (RFC 8201 4)
		// Forwarding (Options.Forwarding, forward6.go), as Linux's
		// Ip6OutForwDatagrams, Ip6InNoRoutes, Ip6InTooBigErrors.
		ForwDatagrams      Counter // forwarded
		InNoRoutes         Counter // not forwarded: no route, or a blackhole, unreachable or prohibit rule
		InTooBigErrors     Counter // not forwarded: over the outgoing MTU (Packet Too Big sent; FragFails too)
		InHopLimitExceeded Counter // not forwarded: hop limit 1 or 0 (Time Exceeded sent; InHdrErrors too)
		ForwScope          Counter // not forwarded: link-local destination, or a link-local or unspecified source leaving its link (InAddrErrors too)
		ForwSameLink       Counter // forwarded out of the link it came in on (where a router would redirect)
		// SRv6 endpoint (Options.Seg6Enabled, seg6.go).
		Seg6Disabled   Counter // a Segment Routing Header for this host with SRv6 off (stack or NIC): dropped
		Seg6HMACDrops  Counter // an SRH whose HMAC could not be verified (no keys) or was required and missing: dropped
		Seg6End        Counter // segments left decremented, the destination set to the next segment
		Seg6Local      Counter // of those, the next segment one of ours: the headers processed again
		Seg6BadSRH     Counter // segments left beyond the list: Parameter Problem (InHdrErrors too)
		Seg6NoForward  Counter // the next segment not ours and forwarding off: dropped (InAddrErrors too)
		Seg6Decap      Counter // segments left 0 over IPv6 or IPv4: the inner packet received
		Seg6DecapLimit Counter // encapsulations nested deeper than seg6MaxDecap: dropped
	}
	ICMP6 struct {
		InMsgs, InErrors, InCsumErrors Counter
		InEchos, InEchoReplies         Counter
		InDestUnreachs, InPktTooBigs   Counter
		InTimeExcds, InParmProblems    Counter
		InUnmatched                    Counter // errors that matched no socket
		InNDBad                        Counter // ND message failing RFC 4861 validation (hop limit, code, length, options, source) or fragmented (RFC 6980)
		InRouterSolicits               Counter
		InRouterAdverts                Counter
		InNeighborSolicits             Counter
		InNeighborAdverts              Counter
		InRedirects                    Counter // redirects received (Redirect6 says what became of them)
		InMLDQueries, InMLDReports     Counter
		InOther                        Counter
		OutMsgs                        Counter
		OutEchoReplies, OutEchos       Counter
		OutDestUnreachs, OutPktTooBigs Counter
		OutErrors                      Counter // errors counted that could not be sent (Icmp6OutErrors)
		OutTimeExcds, OutParmProblems  Counter
		OutRouterSolicits              Counter
		OutNeighborSolicits            Counter
		OutNeighborAdverts             Counter
		OutMLDReports                  Counter
		OutRedirects                   Counter // redirects sent by forwarding (RFC 4861 8.2)
		OutRateLimited                 Counter // errors suppressed by the shared rate limiter
		OutSuppressed                  Counter // errors not sent by rule (RFC 4443 2.4(e))
	}
	// Redirect6 is what became of each ICMPv6 redirect (RFC 4861 8.1):
	// applied, or dropped for the first rule it broke (ndp_redirect.go).
	Redirect6 struct {
		Accepted     Counter // a destination-cache entry installed or renewed
		BadSource    Counter // IP source not link-local (or came in on loopback)
		BadHopLimit  Counter // hop limit not 255
		BadCode      Counter // ICMP code not 0
		BadLength    Counter // shorter than 40 bytes
		BadOptions   Counter // an option of length 0 or running past the end
		MulticastDst Counter // destination address multicast
		BadTarget    Counter // target neither link-local nor the destination
		NotFirstHop  Counter // source is not our first-hop router for the destination
		CacheFull    Counter // destination cache at its limit: not installed
	}
	ND struct {
		DADStarted, DADSucceeded   Counter
		DADFailures                Counter // duplicate found: the address was not assigned
		DADRetries                 Counter // stable privacy address regenerated after a conflict (RFC 7217 6)
		ResolveFailures            Counter // no answer to the multicast solicitations
		ProbeFailures              Counter // a neighbour in PROBE stopped answering: entry removed
		PendingDrops               Counter // packets dropped while waiting for resolution
		CacheFull                  Counter
		IncompleteFull             Counter // resolutions refused: half the cache already waits for answers (RFC 6583)
		CacheEvictions             Counter
		RouterAdded, RouterExpired Counter
		RoutersFull                Counter // routers beyond IPv6MaxRouters ignored
		PrefixesAdded              Counter // on-link prefixes learnt
		PrefixesFull               Counter // on-link prefixes ignored: IPv6MaxPrefixes reached
		SLAACAddrs                 Counter // addresses configured from prefixes
		SLAACAddrsFull             Counter // refused: IPv6MaxAddrs reached
		AddrExpired                Counter // SLAAC addresses removed at the end of their valid lifetime
		RAMTU                      Counter // MTU options applied
		RAMTUBad                   Counter // MTU options out of range (below 1280 or above the link's)
		RATimersClamped            Counter // RA reachable time below 100 ms or retransmit timer below 10 ms: raised to that (as Linux)
		RAIgnored                  Counter // RAs not applied by a forwarding stack (Linux's accept_ra=1; Options.AcceptRAWhenForwarding)
	}
	Raw struct {
		InCsumErrors Counter // IPV6_CHECKSUM did not verify: not delivered
		InDelivers   Counter
		RcvbufErrors Counter
		OutPackets   Counter
	}
	Packet struct {
		RcvbufErrors Counter // frames dropped at a full AF_PACKET socket queue
	}
	TProxy TransparentStats // transparent divert rules (transparent.go)
}

// Stat is one named counter value.
type Stat struct {
	Section, Name string
	Value         uint64
}

// Snapshot lists every counter in declaration order.
func (s *Stats) Snapshot() []Stat {
	var out []Stat
	v := reflect.ValueOf(s).Elem()
	for i := 0; i < v.NumField(); i++ {
		sec := v.Field(i)
		name := v.Type().Field(i).Name
		for j := 0; j < sec.NumField(); j++ {
			c := sec.Field(j).Addr().Interface().(*Counter)
			out = append(out, Stat{name, sec.Type().Field(j).Name, c.Load()})
		}
	}
	return out
}
