package socket

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/sockstack/sockstack/waiter"
)

// AF_UNIX sockets between programs that share one Net.
//
// Names live in the Net's unixSpace, not on disk. A name starting with
// "@" (or, as in Linux, with a NUL byte) is abstract and is freed when its
// socket closes. Any other name is a "path": like the socket file Linux
// leaves behind, it stays taken after close (bind gives EADDRINUSE,
// connect gives ECONNREFUSED) until Net.Unlink removes it.
//
// Locking: each endpoint has its own mutex. An endpoint never holds its
// lock while taking another endpoint's, except a connecting stream
// client, which nests the listener's lock inside its own; listeners never
// take another endpoint's lock while holding theirs, so no cycle exists.
// unixSpace.mu is innermost.

const (
	unixPathMax     = 108 // sizeof(sun_path)
	unixDefaultBuf  = 212992
	unixMaxDgramQ   = 10 // net.unix.max_dgram_qlen
	unixMinSndBuf   = 4608
	unixMinRcvBuf   = 2304
	unixMaxBuf      = 1 << 24
	unixShutRcv     = 1
	unixShutSnd     = 2
	unixShutBoth    = unixShutRcv | unixShutSnd
	unixAllEvents   = waiter.EventIn | waiter.EventOut | waiter.EventErr | waiter.EventHUp | waiter.EventRdHUp
	unixAutobindMax = 1 << 20 // Linux: 5 hex digits
)

type unixState uint8

const (
	unixUnconnected unixState = iota
	unixListening
	unixConnecting // stream: queued beyond the listener's backlog
	unixConnected
	unixClosed
)

// unixSpace is the AF_UNIX name space of one Net (paths and abstract names).
type unixSpace struct {
	mu       sync.Mutex
	names    map[string]*unixEP // nil value: a path left behind by a closed socket
	autobind int
	inflight atomic.Int64 // SCM_RIGHTS references not yet received (unix_rights.go)

	// Garbage collection of sockets in flight (unix_rights.go).
	gc       sync.RWMutex         // held shared while references are in a caller's hands
	cmu      sync.Mutex           // guards carriers; innermost
	carriers map[*unixEP]struct{} // endpoints that have queued references
	gcNext   atomic.Int64         // in-flight count at which a sendmsg collects

	// Limits of SCM_RIGHTS (unix_rights.go) and what they refused.
	nofile     func() uint64 // RLIMIT_NOFILE; nil: the process's soft limit
	capable    func() bool   // exempt from it; nil: CAP_SYS_RESOURCE or CAP_SYS_ADMIN
	tooMany    atomic.Uint64 // sendmsg refused with ETOOMANYREFS
	tooManyFDs atomic.Uint64 // sendmsg refused with EINVAL: more than SCM_MAX_FD

	// Sends the queue limits refused with EAGAIN (unix_mem.go).
	qFull   atomic.Uint64 // the receiver's queue held max_dgram_qlen+1 datagrams
	sndFull atomic.Uint64 // the sender's unread messages took its SO_SNDBUF
	tooBig  atomic.Uint64 // ENOBUFS: a datagram too big for Linux to allocate

	// now is the Net's clock in Unix nanoseconds, for timestamps
	// (unix_stamp.go); nil: none.
	now func() int64

	// Close-on-exec of descriptors received with MSG_CMSG_CLOEXEC.
	fdmu      sync.Mutex
	cloexec   map[int32]*Socket // by descriptor; a stale entry names a closed Socket
	cloexecGC int               // size at which setCloexec sweeps closed entries
}

func newUnixSpace() *unixSpace { return &unixSpace{names: map[string]*unixEP{}} }

// unixKey turns a user-visible name into the namespace key: abstract
// names start with NUL, paths are kept as given.
func unixKey(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	key := name
	if name[0] == '@' {
		key = "\x00" + name[1:]
	}
	if len(key) > unixPathMax || (key[0] != 0 && len(key) > unixPathMax-1) {
		return "", syscall.EINVAL
	}
	if key[0] != 0 && strings.IndexByte(key, 0) >= 0 {
		return "", syscall.EINVAL
	}
	return key, nil
}

// unixDisplay is the inverse of unixKey for abstract names.
func unixDisplay(key string) string {
	if key != "" && key[0] == 0 {
		return "@" + key[1:]
	}
	return key
}

func (sp *unixSpace) bind(e *unixEP, key string) (string, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if key == "" {
		// Autobind: an abstract name of five hex digits, as Linux picks.
		for i := 0; i < unixAutobindMax; i++ {
			sp.autobind = (sp.autobind + 1) % unixAutobindMax
			k := fmt.Sprintf("\x00%05x", sp.autobind)
			if _, used := sp.names[k]; !used {
				sp.names[k] = e
				return k, nil
			}
		}
		return "", syscall.ENOSPC
	}
	if _, used := sp.names[key]; used {
		return "", syscall.EADDRINUSE
	}
	sp.names[key] = e
	return key, nil
}

// lookup finds the socket bound to key, with Linux's errors: ENOENT for
// a path nobody created, ECONNREFUSED for a stale path or a missing
// abstract name.
func (sp *unixSpace) lookup(key string) (*unixEP, error) {
	if key == "" {
		return nil, syscall.EINVAL
	}
	sp.mu.Lock()
	e, ok := sp.names[key]
	sp.mu.Unlock()
	if !ok {
		if key[0] == 0 {
			return nil, syscall.ECONNREFUSED
		}
		return nil, syscall.ENOENT
	}
	if e == nil {
		return nil, syscall.ECONNREFUSED
	}
	return e, nil
}

// typeMismatch is the error for a name bound by a socket of another
// type: Linux looks abstract names up by type (so none is found,
// ECONNREFUSED) and paths by inode (EPROTOTYPE).
func typeMismatch(key string) error {
	if key != "" && key[0] == 0 {
		return syscall.ECONNREFUSED
	}
	return syscall.EPROTOTYPE
}

// release frees an abstract name, and leaves a path behind as stale.
func (sp *unixSpace) release(e *unixEP, key string) {
	if key == "" {
		return
	}
	sp.mu.Lock()
	if sp.names[key] == e {
		if key[0] == 0 {
			delete(sp.names, key)
		} else {
			sp.names[key] = nil
		}
	}
	sp.mu.Unlock()
}

// Unlink removes an AF_UNIX path name, like unlink(2) on the socket
// file: ENOENT when there is none. A socket still bound to it keeps
// working but can no longer be reached by name.
func (n *Net) Unlink(path string) error {
	key, err := unixKey(path)
	if err != nil {
		return err
	}
	if key == "" || key[0] == 0 {
		return syscall.ENOENT
	}
	sp := n.unix
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if _, ok := sp.names[key]; !ok {
		return syscall.ENOENT
	}
	delete(sp.names, key)
	return nil
}

// SocketPair returns two connected AF_UNIX sockets of type typ
// (SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET), like socketpair(2).
func (n *Net) SocketPair(typ int) (*Socket, *Socket, error) {
	typ, flags, err := splitType(typ) // SOCK_NONBLOCK, SOCK_CLOEXEC
	if err != nil {
		return nil, nil, err
	}
	if typ != SOCK_STREAM && typ != SOCK_DGRAM && typ != SOCK_SEQPACKET {
		return nil, nil, syscall.ESOCKTNOSUPPORT
	}
	a, b := newUnixEP(n.unix, typ), newUnixEP(n.unix, typ)
	a.peer, b.peer = b, a
	a.state, b.state = unixConnected, unixConnected
	// Linux gives both ends of a pair the creator's credentials.
	a.peerCred, b.peerCred = true, true
	return n.register(AF_UNIX, typ, 0, a).applyTypeFlags(flags), n.register(AF_UNIX, typ, 0, b).applyTypeFlags(flags), nil
}

func (n *Net) newUnix(typ, proto int) (endpoint, error) {
	if proto != 0 && proto != AF_UNIX {
		return nil, syscall.EPROTONOSUPPORT
	}
	switch typ {
	case SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET:
		return newUnixEP(n.unix, typ), nil
	}
	return nil, syscall.ESOCKTNOSUPPORT
}

// byteRing is a circular byte buffer that grows on demand (so idle
// sockets stay small) and is reused, so steady-state traffic does not
// allocate.
type byteRing struct {
	buf  []byte
	head int
	n    int
}

func (r *byteRing) write(b []byte) {
	if len(b) == 0 {
		return // an empty datagram: nothing to store (and buf may be nil)
	}
	need := r.n + len(b)
	if need > len(r.buf) {
		c := max(len(r.buf)*2, 512)
		for c < need {
			c *= 2
		}
		nb := make([]byte, c)
		r.peek(nb[:r.n], 0)
		r.buf, r.head = nb, 0
	}
	tail := (r.head + r.n) % len(r.buf)
	k := copy(r.buf[tail:], b)
	copy(r.buf, b[k:])
	r.n += len(b)
}

// peek copies up to len(b) bytes starting off bytes after the head.
func (r *byteRing) peek(b []byte, off int) int {
	if off >= r.n || len(b) == 0 {
		return 0
	}
	m := min(len(b), r.n-off)
	start := (r.head + off) % len(r.buf)
	k := copy(b[:m], r.buf[start:])
	copy(b[k:m], r.buf)
	return m
}

func (r *byteRing) discard(n int) {
	if n == 0 {
		return
	}
	r.head = (r.head + n) % len(r.buf)
	r.n -= n
	if r.n == 0 {
		r.head = 0
	}
}

func (r *byteRing) reset() { *r = byteRing{} }

// unixRec is one queued datagram or seqpacket message: its length in
// rx, its sender and the descriptors it carries (unix_rights.go).
type unixRec struct {
	n      int
	at     int64 // when it was sent, for a receiver that asked (unix_stamp.go); 0: not stamped
	from   string
	rights []flightRef
	cred   unixCred
	src    *unixEP // the sender, whose SIOCOUTQ counts the message until it is read
}

type unixPending struct{ client, srv *unixEP }

// unixChunk is one stream skb as Linux would queue it: n bytes charged
// ts to the sender.
type unixChunk struct{ n, ts int32 }

// unixEP is one AF_UNIX socket: stream, datagram or seqpacket. A
// seqpacket socket connects as a stream one does and queues messages as
// a datagram one does.
type unixEP struct {
	sp  *unixSpace
	typ int
	wq  waiter.Queue

	mu       sync.Mutex
	state    unixState
	name     string // namespace key; "" unbound
	peer     *unixEP
	peerName string
	shut     int
	err      syscall.Errno // pending SO_ERROR
	sndbuf   atomic.Int64  // SO_SNDBUF, read without mu where a reader frees our charge
	rcvbuf   int
	rx       byteRing // stream bytes, or datagram payloads back to back
	passcred bool     // SO_PASSCRED
	peerCred bool     // SO_PEERCRED holds the process's credentials (else none)
	embryo   bool     // a connection's server end not yet accepted (no socket)

	// Stream: descriptors in flight with the bytes they came with, and
	// the credentials each stretch of bytes came with (unix_rights.go).
	marks  []unixMark
	creds  []unixCredRun
	rxBase int64 // stream bytes read so far (the head's position)

	// Listener.
	backlog  int
	acceptQ  []*unixEP
	pendingQ []unixPending
	// Stream client queued beyond a listener's backlog.
	pendingOn *unixEP

	// Datagram.
	recs      []unixRec // ring of queued datagrams
	rhead, rn int
	blockedOn *unixEP      // receiver whose full queue made our send EAGAIN
	writers   []*unixEP    // senders waiting for room in our queue
	sentq     atomic.Int64 // what we sent that is unread, in Linux's truesize (unix_mem.go; SIOCOUTQ)

	// Stream: the charge of each chunk we hold that is not wholly read,
	// oldest first (a ring), and how much of the oldest was read; the
	// charge goes back to the peer when a chunk is read to its end.
	chunks    []unixChunk
	chead, cn int
	cread     int
	po        peekOff                   // SO_PEEK_OFF (peekoff.go)
	oob       *unixOOB                  // out-of-band byte (unix_oob.go)
	stamp     atomic.Pointer[unixStamp] // timestamp options (unix_stamp.go)
}

func newUnixEP(sp *unixSpace, typ int) *unixEP {
	e := &unixEP{sp: sp, typ: typ, rcvbuf: unixDefaultBuf}
	e.sndbuf.Store(unixDefaultBuf)
	return e
}

func (e *unixEP) stream() bool          { return e.typ == SOCK_STREAM }
func (e *unixEP) connOriented() bool    { return e.typ != SOCK_DGRAM }
func (e *unixEP) waiter() *waiter.Queue { return &e.wq }

func (e *unixEP) bind(a Sockaddr) error {
	sa, ok := a.(*SockaddrUnix)
	if !ok {
		return syscall.EINVAL
	}
	key, err := unixKey(sa.Name)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state == unixClosed {
		return syscall.EBADF
	}
	if e.name != "" {
		if sa.Name == "" {
			return nil // unix_autobind: a bound socket keeps its name
		}
		return syscall.EINVAL
	}
	k, err := e.sp.bind(e, key)
	if err != nil {
		return err
	}
	e.name = k
	return nil
}

func (e *unixEP) listen(backlog int) error {
	if !e.connOriented() {
		return syscall.EOPNOTSUPP
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != unixUnconnected && e.state != unixListening {
		return syscall.EINVAL
	}
	if e.name == "" {
		return syscall.EINVAL // Linux: listen needs a bound name
	}
	if backlog < 0 || backlog > SOMAXCONN {
		backlog = SOMAXCONN
	}
	e.backlog = backlog
	e.state = unixListening
	e.peerCred = true // Linux: a listener's SO_PEERCRED is its own
	return nil
}

func (e *unixEP) accept() (endpoint, Sockaddr, error) {
	if !e.connOriented() {
		return nil, nil, syscall.EOPNOTSUPP
	}
	e.mu.Lock()
	if e.state != unixListening {
		e.mu.Unlock()
		return nil, nil, syscall.EINVAL
	}
	if len(e.acceptQ) == 0 {
		e.mu.Unlock()
		return nil, nil, syscall.EAGAIN
	}
	srv := e.acceptQ[0]
	e.acceptQ[0] = nil
	e.acceptQ = e.acceptQ[1:]
	var promoted *unixEP
	if len(e.pendingQ) > 0 {
		p := e.pendingQ[0]
		e.pendingQ[0] = unixPending{}
		e.pendingQ = e.pendingQ[1:]
		e.acceptQ = append(e.acceptQ, p.srv)
		promoted = p.client
	}
	e.mu.Unlock()
	if promoted != nil {
		promoted.mu.Lock()
		if promoted.state == unixConnecting {
			promoted.state = unixConnected
			promoted.pendingOn = nil
		}
		promoted.mu.Unlock()
		promoted.wq.Notify(waiter.EventOut)
	}
	srv.mu.Lock()
	srv.embryo = false
	from := &SockaddrUnix{unixDisplay(srv.peerName)}
	srv.mu.Unlock()
	return srv, from, nil
}

func (e *unixEP) connect(a Sockaddr) error {
	if e.typ == SOCK_DGRAM {
		return e.connectDgram(a)
	}
	sa, ok := a.(*SockaddrUnix)
	if !ok {
		return syscall.EAFNOSUPPORT
	}
	key, err := unixKey(sa.Name)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.state {
	case unixListening:
		return syscall.EINVAL
	case unixConnecting:
		return syscall.EALREADY
	case unixConnected:
		return syscall.EISCONN
	case unixClosed:
		return syscall.EBADF
	}
	if err := e.autobindCredLocked(); err != nil {
		return err
	}
	t, err := e.sp.lookup(key)
	if err != nil {
		return err
	}
	if t == e {
		return syscall.ECONNREFUSED
	}
	if t.typ != e.typ {
		return typeMismatch(key)
	}
	srv := newUnixEP(e.sp, e.typ)
	srv.state = unixConnected
	srv.peer = e
	srv.peerName = e.name
	srv.peerCred = true
	srv.embryo = true // its buffers are the defaults, as Linux's new sock's

	t.mu.Lock()
	if t.state != unixListening {
		t.mu.Unlock()
		return syscall.ECONNREFUSED
	}
	srv.name = t.name
	srv.passcred = t.passcred // unix_sock_inherit_flags at accept
	// Linux lets backlog+1 connections wait before the queue is full.
	pending := len(t.acceptQ) > t.backlog
	if pending {
		t.pendingQ = append(t.pendingQ, unixPending{client: e, srv: srv})
	} else {
		t.acceptQ = append(t.acceptQ, srv)
	}
	t.mu.Unlock()

	e.peer = srv
	e.peerName = t.name
	e.peerCred = true
	e.err = 0
	if pending {
		// A blocking connect waits until accept makes room; a
		// non-blocking one reports EINPROGRESS (Linux says EAGAIN) and
		// becomes writable then.
		e.state = unixConnecting
		e.pendingOn = t
		return syscall.EINPROGRESS
	}
	e.state = unixConnected
	t.wq.Notify(waiter.EventIn)
	return nil
}

func (e *unixEP) connectDgram(a Sockaddr) error {
	switch a.(type) {
	case Unspec, *Unspec:
		e.mu.Lock()
		e.peer, e.peerName = nil, ""
		if e.state == unixConnected {
			e.state = unixUnconnected
		}
		e.mu.Unlock()
		return nil
	}
	sa, ok := a.(*SockaddrUnix)
	if !ok {
		return syscall.EAFNOSUPPORT
	}
	key, err := unixKey(sa.Name)
	if err != nil {
		return err
	}
	t, err := e.sp.lookup(key)
	if err != nil {
		return err
	}
	if t.typ != e.typ {
		return typeMismatch(key)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state == unixClosed {
		return syscall.EBADF
	}
	if err := e.autobindCredLocked(); err != nil {
		return err
	}
	e.peer, e.peerName = t, key
	e.state = unixConnected
	return nil
}

func (e *unixEP) connectResult() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != 0 {
		err := e.err
		e.err = 0
		return err
	}
	return nil
}

func (e *unixEP) send(b []byte, flags int, to Sockaddr, _ <-chan struct{}) (int, error) {
	n, _, err := e.sendAtt(b, flags, to, nil, nil)
	return n, err
}

// sendAtt sends b with the descriptors rights and the credentials cred
// (SCM_CREDENTIALS; nil: none given); used reports whether the message
// took the descriptors (else the caller still holds them). Of flags
// only MSG_OOB counts (unix_oob.go).
func (e *unixEP) sendAtt(b []byte, flags int, to Sockaddr, rights []flightRef, cred *Ucred) (n int, used bool, err error) {
	oob := flags&MSG_OOB != 0
	if oob && (e.typ != SOCK_STREAM || len(b) == 0) {
		return 0, false, syscall.EOPNOTSUPP // before any other check, as Linux
	}
	switch e.typ {
	case SOCK_DGRAM:
		return e.sendDgram(b, to, rights, cred)
	case SOCK_SEQPACKET:
		return e.sendSeq(b, rights, cred)
	}
	e.mu.Lock()
	if e.state != unixConnected && e.state != unixConnecting {
		e.mu.Unlock()
		if to != nil {
			return 0, false, syscall.EOPNOTSUPP
		}
		return 0, false, syscall.ENOTCONN
	}
	if e.shut&unixShutSnd != 0 {
		e.mu.Unlock()
		return 0, false, syscall.EPIPE
	}
	p, limit, passcred := e.peer, e.sndBuf(), e.passcred
	e.mu.Unlock()
	if len(b) == 0 {
		// Linux's stream sendmsg queues nothing for no bytes, and the
		// descriptors of such a call are not sent.
		return 0, false, nil
	}

	p.mu.Lock()
	if p.state == unixClosed || p.shut&unixShutRcv != 0 {
		p.mu.Unlock()
		return 0, false, syscall.EPIPE
	}
	// Chunk by chunk as unix_stream_sendmsg: each is charged to us
	// before it is queued, and none starts once the charge has reached
	// SO_SNDBUF.
	cr := attachCred(cred, passcred, p)
	body := len(b)
	if oob {
		body-- // the last byte goes out of band, in a chunk of its own
	}
	for n < len(b) && int(e.sentq.Load()) < limit {
		k := 1
		if n < body {
			k = unixStreamChunk(body-n, limit)
		} else {
			p.oobState().at = p.rxBase + int64(p.rx.n) + 1
		}
		if rights != nil && n == 0 {
			// The descriptors go with the first chunk, which no read
			// joins to the bytes after it (Linux: an skb with fds ends
			// a read).
			start := p.rxBase + int64(p.rx.n)
			p.marks = append(p.marks, unixMark{start: start, end: start + int64(k), rights: rights})
			p.sp.carry(p)
			used = true
		}
		ts := unixStreamTruesize(k)
		e.sentq.Add(int64(ts))
		p.pushChunk(k, ts)
		p.addCredRun(k, cr) // joins the run of the previous chunk
		p.rx.write(b[n : n+k])
		n += k
	}
	if n == 0 {
		p.mu.Unlock()
		e.sp.sndFull.Add(1)
		return 0, false, syscall.EAGAIN
	}
	p.mu.Unlock()
	if oob && n == len(b) {
		p.wq.Notify(waiter.EventIn | waiter.EventPri)
	} else {
		p.wq.Notify(waiter.EventIn)
	}
	return n, used, nil
}

// pushChunk queues the record of a stream chunk; call with e.mu held.
func (e *unixEP) pushChunk(n, ts int) {
	if e.cn == len(e.chunks) {
		nc := make([]unixChunk, max(16, 2*len(e.chunks)))
		for i := 0; i < e.cn; i++ {
			nc[i] = e.chunks[(e.chead+i)%len(e.chunks)]
		}
		e.chunks, e.chead = nc, 0
	}
	e.chunks[(e.chead+e.cn)%len(e.chunks)] = unixChunk{n: int32(n), ts: int32(ts)}
	e.cn++
}

// readChunks accounts n stream bytes read and returns the charge of the
// chunks read to their end; call with e.mu held.
func (e *unixEP) readChunks(n int) int {
	freed := 0
	e.cread += n
	for e.cn > 0 {
		c := e.chunks[e.chead]
		if e.cread < int(c.n) {
			break
		}
		e.cread -= int(c.n)
		freed += int(c.ts)
		e.chunks[e.chead] = unixChunk{}
		e.chead = (e.chead + 1) % len(e.chunks)
		e.cn--
	}
	return freed
}

// uncharge gives back ts of e's send charge, and wakes e's writers when
// that makes it writable (Linux's sock_wfree and unix_write_space).
func (e *unixEP) uncharge(ts int) {
	if ts == 0 {
		return
	}
	if left := e.sentq.Add(-int64(ts)); unixWritable(int(left), e.sndBuf()) {
		e.wq.Notify(waiter.EventOut)
	}
}

func (e *unixEP) sndBuf() int { return int(e.sndbuf.Load()) }

func (e *unixEP) recv(b []byte, flags int) (int, int, Sockaddr, error) {
	return e.recvAtt(b, flags, nil)
}

// recvAtt is recv that hands the descriptors and credentials of what it
// read to *anc (nil: the descriptors are released, as when a plain recv
// meets them).
func (e *unixEP) recvAtt(b []byte, flags int, anc *unixAnc) (int, int, Sockaddr, error) {
	if flags&MSG_OOB != 0 {
		n, err := e.recvOOB(b, flags&MSG_PEEK != 0) // unix_oob.go
		return n, n, nil, err
	}
	switch e.typ {
	case SOCK_DGRAM:
		return e.recvDgram(b, flags, anc)
	case SOCK_SEQPACKET:
		e.mu.Lock()
		st := e.state
		e.mu.Unlock()
		if st != unixConnected && st != unixClosed {
			return 0, 0, nil, syscall.ENOTCONN // unix_seqpacket_recvmsg
		}
		return e.recvDgram(b, flags, anc)
	}
	peek := flags&MSG_PEEK != 0
	skip := 0 // where a peek starts (SO_PEEK_OFF)
	if off := e.po.get(); peek && off > 0 {
		skip = off
	}
	e.mu.Lock()
	if e.state == unixListening || e.state == unixUnconnected {
		e.mu.Unlock()
		return 0, 0, nil, syscall.EINVAL
	}
	if skip > 0 && skip >= e.rx.n && e.rx.n > 0 && e.shut&unixShutRcv == 0 && e.state != unixClosed {
		e.mu.Unlock()
		return 0, 0, nil, syscall.EAGAIN // nothing past the offset yet
	}
	if e.oob != nil {
		// The out-of-band byte and the places MSG_OOB emptied
		// (unix_oob.go): what the read starts on is stepped over.
		var dropped int
		skip, dropped, _ = e.oobLead(skip, peek, false)
		if p := e.peer; dropped > 0 && p != nil {
			defer p.uncharge(dropped) // after the unlock below
		}
	}
	if e.rx.n > skip {
		freed, n := 0, 0
		var cred unixCred
		var got []flightRef
		// One stretch of bytes, or with out-of-band data several: the
		// read stops at the mark, and steps over a place MSG_OOB
		// emptied when another byte waits further on (manage_oob).
		for piece := 0; ; piece++ {
			lim := len(b) - n
			pos := e.rxBase + int64(skip)
			if run := e.credRunAt(pos); run != nil && e.passcred {
				// With SO_PASSCRED a read does not join bytes sent with
				// other credentials (Linux: unix_skb_scm_eq). One send's
				// bytes are in one run, so a stretch with descriptors is
				// never cut by this limit.
				if piece == 0 {
					if anc != nil && anc.want != nil && run.cred != *anc.want {
						e.mu.Unlock()
						return 0, 0, nil, errUnixCredBreak
					}
					cred = run.cred
				} else if run.cred != cred {
					break
				}
				lim = min(lim, int(run.end-pos))
			}
			oobCut := false
			if o := e.oob; o != nil {
				if at := o.stopAfter(pos); at >= 0 && int(at-pos) <= lim {
					lim, oobCut = int(at-pos), true
				}
			}
			if m := e.markAt(pos); m != nil {
				if rel := m.start - pos; rel < int64(min(lim, e.rx.n-skip)) {
					// This read reaches bytes that came with descriptors:
					// it takes them and ends with their chunk.
					lim = min(lim, int(m.end-pos))
					if peek {
						got = dupRefs(m.rights)
					} else {
						got = e.popMark()
					}
				}
			}
			k := e.rx.peek(b[n:n+min(lim, e.rx.n-skip)], skip)
			n += k
			if peek {
				e.po.fwd(k)
				skip += k
			} else {
				freed += e.consume(k)
			}
			if !oobCut || got != nil || n == len(b) {
				break
			}
			var dropped int
			var stop bool
			skip, dropped, stop = e.oobLead(skip, peek, true)
			freed += dropped
			if stop || skip >= e.rx.n {
				break
			}
		}
		p := e.peer
		e.mu.Unlock()
		handAnc(got, cred, anc)
		if p != nil {
			p.uncharge(freed)
		}
		return n, n, nil, nil
	}
	if e.err != 0 {
		err := e.err
		e.err = 0
		e.mu.Unlock()
		return 0, 0, nil, err
	}
	if e.shut&unixShutRcv != 0 || e.state == unixClosed {
		e.mu.Unlock()
		return 0, 0, nil, nil
	}
	e.mu.Unlock()
	if len(b) == 0 {
		return 0, 0, nil, nil
	}
	return 0, 0, nil, syscall.EAGAIN
}

// consume takes k stream bytes off the head of the ring, with their
// credentials and SO_PEEK_OFF's share, and returns the charge freed by
// the chunks read to their end (e.mu held).
func (e *unixEP) consume(k int) int {
	e.rx.discard(k)
	e.rxBase += int64(k)
	e.pruneCredRuns()
	e.po.bwd(k)
	return e.readChunks(k)
}

// popMark takes the first descriptor mark off the queue and returns
// its references (e.mu held).
func (e *unixEP) popMark() []flightRef {
	r := e.marks[0].rights
	e.marks[0] = unixMark{}
	e.marks = e.marks[1:]
	if len(e.marks) == 0 {
		e.marks = nil
	}
	return r
}

// full is Linux's unix_recvq_full: more than max_dgram_qlen messages
// wait. Only senders e is not connected to are held back by it (see
// sendDgram1); SO_RCVBUF plays no part, as in Linux.
func (e *unixEP) full() bool { return e.rn > unixMaxDgramQ }

func (e *unixEP) sendDgram(b []byte, to Sockaddr, rights []flightRef, cred *Ucred) (int, bool, error) {
	n, err := e.sendDgram1(b, to, rights, cred)
	return n, err == nil, err
}

func (e *unixEP) sendDgram1(b []byte, to Sockaddr, rights []flightRef, cred *Ucred) (int, error) {
	e.mu.Lock()
	if e.state == unixClosed {
		e.mu.Unlock()
		return 0, syscall.EBADF
	}
	if e.shut&unixShutSnd != 0 {
		e.mu.Unlock()
		return 0, syscall.EPIPE
	}
	limit := e.sndBuf()
	e.mu.Unlock()
	if len(b) > limit-unixDgramRoom {
		return 0, syscall.EMSGSIZE
	}
	// Linux allocates the message (sock_alloc_send_pskb) before it
	// looks at the destination: a sender whose unread messages take
	// SO_SNDBUF gets EAGAIN whoever it sends to, even nobody.
	if int(e.sentq.Load()) >= limit {
		e.sp.sndFull.Add(1)
		return 0, syscall.EAGAIN
	}
	if unixDgramTooBig(len(b)) {
		e.sp.tooBig.Add(1)
		return 0, syscall.ENOBUFS
	}
	if err := e.autobindCred(); err != nil {
		return 0, err
	}
	e.mu.Lock()
	from, t, passcred := e.name, e.peer, e.passcred
	e.mu.Unlock()
	connected := to == nil
	if !connected {
		sa, ok := to.(*SockaddrUnix)
		if !ok {
			return 0, syscall.EINVAL
		}
		key, err := unixKey(sa.Name)
		if err != nil {
			return 0, err
		}
		if t, err = e.sp.lookup(key); err != nil {
			return 0, err
		}
		if t.typ != e.typ {
			return 0, typeMismatch(key)
		}
	} else if t == nil {
		return 0, syscall.ENOTCONN
	}
	t.mu.Lock()
	if t.state == unixClosed {
		t.mu.Unlock()
		if connected {
			// Linux reports the dead peer once, then forgets it.
			e.mu.Lock()
			if e.peer == t {
				e.peer, e.peerName = nil, ""
				e.state = unixUnconnected
			}
			e.mu.Unlock()
		}
		return 0, syscall.ECONNREFUSED
	}
	if t.peer != nil && t.peer != e {
		t.mu.Unlock()
		return 0, syscall.EPERM
	}
	if t.shut&unixShutRcv != 0 {
		t.mu.Unlock()
		return 0, syscall.EPIPE
	}
	// The queue length limit holds back only senders the receiver is
	// not connected to (unix_dgram_sendmsg: unix_peer(other) != sk);
	// its own peer is limited by its SO_SNDBUF alone.
	if t.peer != e && t.full() {
		e.sp.qFull.Add(1)
		known := false
		for _, w := range t.writers {
			if w == e {
				known = true
				break
			}
		}
		if !known {
			t.writers = append(t.writers, e)
		}
		t.mu.Unlock()
		e.mu.Lock()
		e.blockedOn = t
		e.mu.Unlock()
		return 0, syscall.EAGAIN
	}
	t.enqueue(b, from, rights, attachCred(cred, passcred, t), e)
	t.mu.Unlock()
	t.wq.Notify(waiter.EventIn)
	e.mu.Lock()
	e.blockedOn = nil
	e.mu.Unlock()
	return len(b), nil
}

// enqueue adds one message to e's queue; call with e.mu held.
func (e *unixEP) enqueue(b []byte, from string, rights []flightRef, cred unixCred, src *unixEP) {
	if e.rn == len(e.recs) {
		nr := make([]unixRec, max(16, 2*len(e.recs)))
		for i := 0; i < e.rn; i++ {
			nr[i] = e.recs[(e.rhead+i)%len(e.recs)]
		}
		e.recs, e.rhead = nr, 0
	}
	e.recs[(e.rhead+e.rn)%len(e.recs)] = unixRec{n: len(b), at: e.stampNow(), from: from, rights: rights, cred: cred, src: src}
	src.sentq.Add(int64(unixDgramTruesize(len(b))))
	if rights != nil {
		e.sp.carry(e)
	}
	e.rn++
	e.rx.write(b)
}

func (e *unixEP) recvDgram(b []byte, flags int, anc *unixAnc) (int, int, Sockaddr, error) {
	peek := flags&MSG_PEEK != 0
	e.mu.Lock()
	if e.typ == SOCK_SEQPACKET && e.err != 0 {
		// Linux's datagram receive reports a pending error (the peer
		// closed with data unread) before the queue.
		err := e.err
		e.err = 0
		e.mu.Unlock()
		return 0, 0, nil, err
	}
	if e.rn == 0 {
		defer e.mu.Unlock()
		if e.err != 0 {
			err := e.err
			e.err = 0
			return 0, 0, nil, err
		}
		if e.shut&unixShutRcv != 0 || e.state == unixClosed {
			return 0, 0, nil, nil
		}
		return 0, 0, nil, syscall.EAGAIN
	}
	idx, at, skip := e.rhead, 0, 0 // the record read, its place in rx, where in it
	if off := e.po.get(); peek && off > 0 {
		i := 0
		for ; i < e.rn; i++ {
			k := e.recs[(e.rhead+i)%len(e.recs)].n
			if off < k {
				break
			}
			off -= k
			at += k
		}
		if i == e.rn {
			e.mu.Unlock()
			return 0, 0, nil, syscall.EAGAIN // nothing past the offset yet
		}
		idx, skip = (e.rhead+i)%len(e.recs), off
	}
	r := e.recs[idx]
	n := e.rx.peek(b[:min(len(b), r.n-skip)], at+skip)
	// Seqpacket too: Linux names the sending socket (an accepted one
	// has its listener's name), and gives no address (msg_namelen 0)
	// for an unbound one.
	var from Sockaddr
	if r.from != "" {
		from = &SockaddrUnix{unixDisplay(r.from)}
	}
	var writers []*unixEP
	got := r.rights
	if peek {
		got = dupRefs(got)
		e.po.fwd(n)
	} else {
		e.po.bwd(r.n)
		e.rx.discard(r.n)
		e.recs[e.rhead] = unixRec{}
		e.rhead = (e.rhead + 1) % len(e.recs)
		e.rn--
		if len(e.writers) > 0 {
			writers = append(writers, e.writers...)
			clear(e.writers)
			e.writers = e.writers[:0]
		}
	}
	e.mu.Unlock()
	handAnc(got, r.cred, anc)
	if anc != nil {
		anc.at = r.at
	}
	for _, w := range writers {
		w.wq.Notify(waiter.EventOut)
	}
	if !peek {
		r.src.uncharge(unixDgramTruesize(r.n))
	}
	return n, r.n - skip, from, nil
}

func (e *unixEP) shutdown(how int) error {
	mode := 0
	switch how {
	case SHUT_RD:
		mode = unixShutRcv
	case SHUT_WR:
		mode = unixShutSnd
	case SHUT_RDWR:
		mode = unixShutBoth
	default:
		return syscall.EINVAL
	}
	e.mu.Lock()
	if e.connOriented() && e.state != unixConnected && e.state != unixConnecting {
		e.mu.Unlock()
		return syscall.ENOTCONN
	}
	e.shut |= mode
	p := e.peer
	e.mu.Unlock()
	// Stream peers see the mirror image, as in Linux.
	if p != nil && e.connOriented() {
		p.mu.Lock()
		if mode&unixShutRcv != 0 {
			p.shut |= unixShutSnd
		}
		if mode&unixShutSnd != 0 {
			p.shut |= unixShutRcv
		}
		p.mu.Unlock()
		p.wq.Notify(unixAllEvents)
	}
	e.wq.Notify(unixAllEvents)
	return nil
}

func (e *unixEP) close() {
	e.mu.Lock()
	if e.state == unixClosed {
		e.mu.Unlock()
		return
	}
	e.state = unixClosed
	unread := e.rx.n > 0 || e.rn > 0
	name, p := e.name, e.peer
	acceptQ, pendingQ, pendingOn, writers := e.acceptQ, e.pendingQ, e.pendingOn, e.writers
	e.acceptQ, e.pendingQ, e.pendingOn, e.writers = nil, nil, nil, nil
	inflight := e.dropRightsLocked()
	e.creds = nil
	e.rx.reset()
	// What nobody will read is freed: its senders get their charge back.
	var srcs []*unixEP
	var charges []int
	for i := 0; i < e.rn; i++ {
		r := &e.recs[(e.rhead+i)%len(e.recs)]
		srcs, charges = append(srcs, r.src), append(charges, unixDgramTruesize(r.n))
	}
	e.recs, e.rhead, e.rn = nil, 0, 0
	if e.cn > 0 && p != nil {
		ts := 0
		for i := 0; i < e.cn; i++ {
			ts += int(e.chunks[(e.chead+i)%len(e.chunks)].ts)
		}
		srcs, charges = append(srcs, p), append(charges, ts)
	}
	e.chunks, e.chead, e.cn, e.cread = nil, 0, 0, 0
	e.shut = unixShutBoth
	e.mu.Unlock()

	for i, src := range srcs {
		src.uncharge(charges[i])
	}
	e.sp.release(e, name)
	// Descriptors nobody will read are closed (after e.mu is let go:
	// a passed socket may be an AF_UNIX one whose close takes locks).
	releaseRefs(inflight)
	if e.connOriented() && p != nil {
		p.mu.Lock()
		p.shut = unixShutBoth
		if unread {
			p.err = syscall.ECONNRESET
		}
		p.mu.Unlock()
		p.wq.Notify(unixAllEvents)
	}
	// Connections nobody accepted: the clients see a reset.
	for _, srv := range acceptQ {
		srv.mu.Lock()
		c := srv.peer
		srv.mu.Unlock()
		if c != nil {
			c.mu.Lock()
			c.err = syscall.ECONNRESET
			c.mu.Unlock()
		}
		srv.close()
	}
	// Clients still waiting for backlog room are refused.
	for _, pc := range pendingQ {
		c := pc.client
		c.mu.Lock()
		if c.state == unixConnecting {
			c.state = unixUnconnected
			c.peer, c.peerName, c.pendingOn = nil, "", nil
			c.err = syscall.ECONNREFUSED
		}
		c.mu.Unlock()
		c.wq.Notify(unixAllEvents)
	}
	if pendingOn != nil {
		pendingOn.mu.Lock()
		for i, pc := range pendingOn.pendingQ {
			if pc.client == e {
				pendingOn.pendingQ = append(pendingOn.pendingQ[:i], pendingOn.pendingQ[i+1:]...)
				break
			}
		}
		pendingOn.mu.Unlock()
		if p != nil {
			p.close()
		}
	}
	for _, w := range writers {
		w.wq.Notify(waiter.EventOut)
	}
	e.wq.Notify(unixAllEvents)
}

func (e *unixEP) readiness(mask waiter.EventMask) waiter.EventMask {
	var r waiter.EventMask
	e.mu.Lock()
	if e.err != 0 {
		r |= waiter.EventErr
	}
	if e.shut == unixShutBoth {
		r |= waiter.EventHUp
	}
	if e.shut&unixShutRcv != 0 {
		r |= waiter.EventIn | waiter.EventRdHUp
	}
	var check, check2 *unixEP // receivers whose full queue makes us not writable
	writable := unixWritable(int(e.sentq.Load()), e.sndBuf())
	switch {
	case e.state == unixClosed:
		r |= waiter.EventHUp
	case e.connOriented():
		switch e.state {
		case unixListening:
			if len(e.acceptQ) > 0 {
				r |= waiter.EventIn
			}
		case unixUnconnected:
			r |= waiter.EventOut | waiter.EventHUp
		case unixConnected:
			if e.rx.n > 0 || e.rn > 0 {
				r |= waiter.EventIn
			}
			if e.oob != nil && e.oob.at != 0 {
				r |= waiter.EventPri // unix_poll's EPOLLPRI
			}
			// unix_poll and (seqpacket) unix_dgram_poll: our charge
			// alone, also once sending is shut down (a send then
			// fails at once, EPIPE, so no blocked send spins).
			if writable {
				r |= waiter.EventOut
			}
		}
	default:
		// unix_dgram_poll: a peer that is not connected back and whose
		// queue is full makes us not writable. A sendto that found its
		// receiver full waits the same way (sockstack: the Socket's
		// blocking send waits on readiness).
		if writable {
			check, check2 = e.peer, e.blockedOn
			if check2 == check {
				check2 = nil
			}
			if check == nil && check2 == nil {
				r |= waiter.EventOut
			}
		}
		if e.rn > 0 {
			r |= waiter.EventIn
		}
	}
	e.mu.Unlock()
	if check != nil || check2 != nil {
		if e.roomAt(check) && e.roomAt(check2) {
			r |= waiter.EventOut
		}
	}
	return r & (mask | waiter.EventErr | waiter.EventHUp)
}

// roomAt reports whether datagram receiver t (nil: none) would take a
// message from e now, as far as its queue length goes.
func (e *unixEP) roomAt(t *unixEP) bool {
	if t == nil {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == unixClosed || t.peer == e || !t.full()
}

func (e *unixEP) localAddr() Sockaddr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return &SockaddrUnix{unixDisplay(e.name)}
}

func (e *unixEP) remoteAddr() (Sockaddr, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.peer == nil || e.state == unixClosed {
		return nil, syscall.ENOTCONN
	}
	return &SockaddrUnix{unixDisplay(e.peerName)}, nil
}

func (e *unixEP) setOption(level, name int, v any) error {
	if level != SOL_SOCKET {
		return syscall.EOPNOTSUPP
	}
	i, err := intOpt(v)
	if err != nil {
		return err
	}
	if name == SO_SNDBUF {
		// More room may make a blocked sender able to go on: Linux
		// calls sk_write_space (after e.mu is let go: deferred first).
		defer func() {
			if unixWritable(int(e.sentq.Load()), e.sndBuf()) {
				e.wq.Notify(waiter.EventOut)
			}
		}()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch name {
	case SO_SNDBUF:
		// Linux doubles the value for bookkeeping overhead.
		e.sndbuf.Store(int64(max(unixMinSndBuf, min(2*i, unixMaxBuf))))
	case SO_RCVBUF:
		e.rcvbuf = max(unixMinRcvBuf, min(2*i, unixMaxBuf))
	case SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_DEBUG, SO_DONTROUTE, SO_OOBINLINE, SO_BROADCAST:
		// Accepted and meaningless for AF_UNIX, as in Linux.
	case SO_PASSCRED:
		e.passcred = i != 0
	case SO_PEERCRED:
		return syscall.ENOPROTOOPT
	default:
		return syscall.ENOPROTOOPT
	}
	return nil
}

func (e *unixEP) getOption(level, name int) (any, error) {
	if level != SOL_SOCKET {
		return nil, syscall.EOPNOTSUPP
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch name {
	case SO_SNDBUF:
		return e.sndBuf(), nil
	case SO_RCVBUF:
		return e.rcvbuf, nil
	case SO_ACCEPTCONN:
		return b2i(e.state == unixListening), nil
	case SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_BROADCAST:
		return 0, nil
	case SO_PASSCRED:
		return b2i(e.passcred), nil
	case SO_PEERCRED:
		if e.peerCred {
			return processCred(), nil
		}
		return Ucred{Pid: 0, Uid: ^uint32(0), Gid: ^uint32(0)}, nil
	}
	return nil, syscall.ENOPROTOOPT
}
