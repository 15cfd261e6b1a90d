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
	}
	ARP struct {
		InRequests, InReplies   Counter
		OutRequests, OutReplies Counter
		InMalformed             Counter
		InNotForUs              Counter
		Gratuitous              Counter // sent when an address is added
		ResolveFailures         Counter // no answer after the retries
		PendingDrops            Counter // packets dropped from a full pending queue or on failure
		CacheFull               Counter // entries refused because the cache was full
		CacheEvictions          Counter
	}
	IP struct {
		InReceives       Counter
		InHdrErrors      Counter // all header errors; the reasons follow
		InTruncated      Counter
		InBadVersion     Counter
		InBadHeaderLen   Counter
		InBadLength      Counter
		InCsumErrors     Counter
		InBadOptions     Counter
		InBadSource      Counter // broadcast, multicast or our own address as source
		InAddrErrors     Counter // not for us and not forwarding
		InUnknownProtos  Counter
		InDiscards       Counter
		InDelivers       Counter
		ForwDatagrams    Counter
		OutRequests      Counter
		OutNoRoutes      Counter
		OutDiscards      Counter
		OutTooBig        Counter // DF set and larger than the MTU (EMSGSIZE)
		TTLExceeded      Counter
		FragOKs          Counter
		FragCreates      Counter
		FragFails        Counter
		ReasmReqds       Counter
		ReasmOKs         Counter
		ReasmFails       Counter
		ReasmTimeout     Counter
		ReasmOverlaps    Counter
		ReasmDuplicates  Counter
		ReasmTooBig      Counter // would exceed 65,535 bytes
		ReasmMemoryDrops Counter // global memory limit reached
		ReasmBadFragment Counter // inconsistent fragment (length not multiple of 8, ...)
	}
	ICMP struct {
		InMsgs, InErrors, InCsumErrors Counter
		InEchos, InEchoReps            Counter
		InDestUnreachs, InTimeExcds    Counter
		InFragNeeded                   Counter
		InOther                        Counter
		InUnmatched                    Counter // errors that matched no socket
		OutMsgs                        Counter
		OutEchos, OutEchoReps          Counter
		OutDestUnreachs, OutTimeExcds  Counter
		OutRateLimited                 Counter // errors suppressed by the rate limit
		OutSuppressed                  Counter // errors not sent by rule (about ICMP errors, broadcasts, fragments)
		PingRcvbufErrors               Counter // echo replies dropped at a full ping socket queue
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
	}
	IGMP struct {
		OutReports, OutLeaves Counter
		InQueries, InReports  Counter
		InErrors              Counter
	}
	Raw struct {
		InDelivers   Counter
		RcvbufErrors Counter
		OutPackets   Counter
	}
	Packet struct {
		RcvbufErrors Counter // frames dropped at a full AF_PACKET socket queue
	}
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
