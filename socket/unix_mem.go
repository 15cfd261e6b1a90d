package socket

import "math/bits"

// Send-buffer accounting of AF_UNIX sockets, as Linux does it.
//
// Linux charges every message (datagram, seqpacket message, or stream
// chunk) to its sender's sk_wmem_alloc with the kernel memory of its
// skb, the truesize, until the receiver has read it; a send waits (or
// fails with EAGAIN) once that sum has reached SO_SNDBUF. sockstack
// keeps the same sum in unixEP.sentq, computed with the formula below,
// which reproduces SIOCOUTQ of Linux 6.18 (x86-64, 4 KiB pages) for
// every datagram length from 0 to 400000 bytes and every stream write
// from 1 to 300000 bytes at six SO_SNDBUF values (docs/DECISIONS.md,
// "AF_UNIX send and receive queue limits").
//
// An skb is a head allocated with kmalloc plus page fragments:
//
//	head(h)   = kmalloc(align64(h) + 320) + 256
//	            (320: struct skb_shared_info; 256: struct sk_buff; the
//	            kmalloc size is a power of two, at least 512)
//	truesize  = head(len - frags) + frags rounded up to whole pages
//
// Datagrams put up to unixSkbMaxAlloc bytes in the head and the rest, at
// most 17 pages, in fragments (unix_dgram_sendmsg). A stream write is cut
// in chunks of at most min(SO_SNDBUF/2 - 64, unixSkbMaxHead + 32768)
// bytes, each of which keeps at most unixSkbMaxHead bytes in its head
// (unix_stream_sendmsg); the charge is checked before each chunk, so a
// write stops part way once the sum reaches SO_SNDBUF.
const (
	unixSkbShinfo   = 320         // SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
	unixSkbStruct   = 256         // SKB_DATA_ALIGN(sizeof(struct sk_buff))
	unixSkbMinHead  = 512         // smallest kmalloc an skb head takes
	unixPage        = 4096        // PAGE_SIZE
	unixSkbMaxHead  = 4096 - 320  // SKB_MAX_HEAD(0)
	unixSkbMaxAlloc = 16384 - 320 // SKB_MAX_ALLOC: order-2 head
	unixSkbMaxFrags = 17 * 4096   // MAX_SKB_FRAGS pages
	unixStreamFrags = 32768       // UNIX_SKB_FRAGS_SZ
	unixMinTruesize = 512 + 256   // truesize of a message of 0..192 bytes (a 1-byte write too)
	unixDgramRoom   = 32          // a datagram may be SO_SNDBUF-32 bytes long
	unixWmemBias    = 1           // sk_wmem_alloc starts at 1 (unix_writable counts it)
	unixWritableDiv = 4           // writable while the charge is at most SO_SNDBUF/4
	unixMaxChunk    = unixSkbMaxHead + unixStreamFrags
	unixKmallocMax  = 4096 << 10 // PAGE_SIZE << MAX_PAGE_ORDER: the largest head
)

// unixSkbHead is the truesize of an skb whose head holds h bytes.
func unixSkbHead(h int) int {
	obj := (h+63)&^63 + unixSkbShinfo
	if obj <= unixSkbMinHead {
		obj = unixSkbMinHead
	} else {
		obj = 1 << bits.Len(uint(obj-1)) // kmalloc rounds up to a power of two
	}
	return obj + unixSkbStruct
}

func unixPages(n int) int { return (n + unixPage - 1) &^ (unixPage - 1) }

// unixDgramTruesize is the charge of one n-byte datagram or seqpacket
// message.
func unixDgramTruesize(n int) int {
	frags := 0
	if n > unixSkbMaxAlloc {
		frags = unixPages(min(n-unixSkbMaxAlloc, unixSkbMaxFrags))
	}
	return unixSkbHead(n-frags) + frags
}

// unixDgramTooBig reports whether Linux could not allocate the head of
// an n-byte datagram (more than 4 MiB of it stays in the head once the
// 17 pages of fragments are full): sendmsg fails with ENOBUFS then.
func unixDgramTooBig(n int) bool {
	head := n - min(max(0, n-unixSkbMaxAlloc), unixSkbMaxFrags)
	return (head+63)&^63+unixSkbShinfo > unixKmallocMax
}

// unixStreamChunk is the length of the next stream chunk when rest bytes
// of a write remain, with SO_SNDBUF sndbuf.
func unixStreamChunk(rest, sndbuf int) int {
	return max(1, min(rest, sndbuf/2-64, unixMaxChunk))
}

// unixStreamTruesize is the charge of one n-byte stream chunk.
func unixStreamTruesize(n int) int {
	frags := min(n, unixPages(max(0, n-unixSkbMaxHead)))
	return unixSkbHead(n-frags) + unixPages(frags)
}

// unixWritable is Linux's unix_writable: poll reports a socket writable
// while what it has queued takes at most a quarter of SO_SNDBUF, and a
// blocked sender is woken only then.
func unixWritable(charged, sndbuf int) bool {
	return (charged+unixWmemBias)*unixWritableDiv <= sndbuf
}

// UnixQueueStats counts the AF_UNIX sends the queue limits refused
// (each EAGAIN, also one a blocking send then waits out).
type UnixQueueStats struct {
	QueueFull   uint64 // a datagram receiver not connected back held max_dgram_qlen+1 messages
	SendBufFull uint64 // the sender's unread messages took its SO_SNDBUF
	TooBig      uint64 // ENOBUFS: a datagram Linux could not allocate (unixDgramTooBig)
}

// UnixQueueStats returns the counters of the AF_UNIX queue limits.
func (n *Net) UnixQueueStats() UnixQueueStats {
	return UnixQueueStats{QueueFull: n.unix.qFull.Load(), SendBufFull: n.unix.sndFull.Load(), TooBig: n.unix.tooBig.Load()}
}
