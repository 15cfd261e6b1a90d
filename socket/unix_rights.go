package socket

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstack/sockstack/waiter"
	"golang.org/x/sys/unix"
)

// AF_UNIX control messages: SCM_RIGHTS, SCM_CREDENTIALS, SO_PASSCRED and
// SO_PEERCRED, and the seqpacket send path.
//
// A descriptor here is a Fileno of the Net's table (Net.Lookup), as a
// file descriptor is an index of a process's table: the sockets of one
// Net are the process's open files. Passing a descriptor in SCM_RIGHTS
// takes a new reference to the open socket (like Dup, but in no table:
// it is "in flight"); the receiver's recvmsg installs it as a new
// descriptor of the same Net, which works on the same socket and keeps
// it open after the sender closes its own. References that are never
// received (the receiving socket closes with the message unread, or the
// control buffer was too short) are closed, as Linux closes them.
//
// Credentials are the process's own (os.Getpid, os.Getuid, os.Getgid):
// every socket of the Net lives in this one process.

// SOL_SOCKET options of AF_UNIX (asm-generic/socket.h).
const (
	SO_PASSCRED = 16
	SO_PEERCRED = 17
)

// SCM_MAX_FD is how many descriptors one sendmsg may pass (EINVAL beyond).
const SCM_MAX_FD = 253

// MSG_CMSG_CLOEXEC (recvmsg): descriptors received in SCM_RIGHTS are
// close-on-exec (see Socket.CloseOnExec); recvUnixControl clears it
// before the endpoint sees the flags.
const MSG_CMSG_CLOEXEC = 0x40000000

// Capability bits of capable() in too_many_unix_fds.
const (
	capSysAdmin    = 21
	capSysResource = 24
)

// Ucred is struct ucred: SO_PEERCRED's value and SCM_CREDENTIALS' data.
type Ucred struct {
	Pid      int32
	Uid, Gid uint32
}

func processCred() Ucred {
	return Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}
}

// flightRef is one reference to an open socket that is not in the
// descriptor table: passed in a message and not yet received.
type flightRef struct {
	family, typ, proto int
	ep                 endpoint
	refs               *atomic.Int32 // shared with the socket's descriptors (Dup)
	apart              *inetApart
	timeout            time.Duration
	sp                 *unixSpace
}

// unixMark is a stretch of a stream's queued bytes sent with descriptors.
type unixMark struct {
	start, end int64 // positions in the stream (rxBase counts)
	rights     []flightRef
}

// takeRef makes an in-flight reference to the socket with descriptor fd.
func (n *Net) takeRef(fd int) (flightRef, error) {
	s := n.Lookup(fd)
	if s == nil {
		return flightRef{}, syscall.EBADF
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		// Close sets closed before it takes mu: seen false here, its
		// closeEndpoint will see our reference.
		return flightRef{}, syscall.EBADF
	}
	x := s.ext()
	if x.refs == nil {
		x.refs = new(atomic.Int32)
		x.refs.Store(1)
	}
	x.refs.Add(1)
	if s.apartTCP() != nil && x.apart == nil {
		x.apart = &inetApart{ttl4: -1, hops6: -1} // shared from now on, as Dup does
	}
	n.unix.inflight.Add(1)
	return flightRef{family: s.family, typ: s.typ, proto: int(s.proto), ep: s.ep, refs: x.refs,
		apart: x.apart, timeout: s.timeout, sp: n.unix}, nil
}

// release drops the reference; the last one closes the socket.
func (r flightRef) release() {
	r.sp.inflight.Add(-1)
	if r.refs.Add(-1) == 0 {
		r.ep.close()
	}
}

// install gives the reference a descriptor in n's table (close-on-exec
// with MSG_CMSG_CLOEXEC).
func (r flightRef) install(n *Net, cloexec bool) int {
	r.sp.inflight.Add(-1)
	ns := n.register(r.family, r.typ, r.proto, r.ep)
	ns.mu.Lock()
	x := ns.ext()
	x.refs, x.apart = r.refs, r.apart
	ns.timeout = r.timeout
	ns.mu.Unlock()
	if cloexec {
		ns.SetCloseOnExec(true)
	}
	return ns.Fileno()
}

func dupRefs(rs []flightRef) []flightRef {
	if rs == nil {
		return nil
	}
	out := make([]flightRef, len(rs))
	for i, r := range rs {
		r.refs.Add(1)
		r.sp.inflight.Add(1)
		out[i] = r
	}
	return out
}

func releaseRefs(rs []flightRef) {
	for _, r := range rs {
		r.release()
	}
}

// unixCred is the credentials a message or stretch of stream bytes came
// with; !ok: none (nobody had SO_PASSCRED when it was sent and it had no
// SCM_CREDENTIALS), which a receiver sees as pid 0 and the overflow ids.
type unixCred struct {
	c  Ucred
	ok bool
}

// unixCredRun is a stretch of a stream's bytes, up to position end,
// sent with the credentials cred. Consecutive sends with the same
// credentials extend one run, so a stream usually has one.
type unixCredRun struct {
	end  int64
	cred unixCred
}

// unixAnc is what a receive hands over besides the data; msg: it read a
// message or stream bytes (not an end of file).
type unixAnc struct {
	rights []flightRef
	cred   unixCred
	msg    bool
	want   *unixCred // a stream read with SO_PASSCRED takes only bytes sent with these
	at     int64     // when a message was stamped (unix_stamp.go); 0: not
}

// handAnc gives got and cred to the caller (dst), or releases got when
// the caller takes no descriptors (a plain recv: Linux closes them).
func handAnc(got []flightRef, cred unixCred, dst *unixAnc) {
	if dst != nil {
		dst.rights, dst.cred, dst.msg = got, cred, true
		return
	}
	releaseRefs(got)
}

// attachCred is Linux's maybe_add_creds at a send to r (r.mu held):
// the credentials given in SCM_CREDENTIALS, else the sender's own when
// the sender or the receiver has SO_PASSCRED, or the receiver is a
// connection not yet accepted (it has no socket whose flag could be
// asked), else none.
func attachCred(given *Ucred, senderPass bool, r *unixEP) unixCred {
	switch {
	case given != nil:
		return unixCred{c: *given, ok: true}
	case senderPass || r.passcred || r.embryo:
		return unixCred{c: processCred(), ok: true}
	}
	return unixCred{}
}

// addCredRun records that the next k stream bytes (about to be written
// to e.rx) came with cred; call with e.mu held.
func (e *unixEP) addCredRun(k int, cred unixCred) {
	start := e.rxBase + int64(e.rx.n)
	if l := len(e.creds); l > 0 && e.creds[l-1].end == start && e.creds[l-1].cred == cred {
		e.creds[l-1].end += int64(k)
		return
	}
	e.creds = append(e.creds, unixCredRun{end: start + int64(k), cred: cred})
}

// pruneCredRuns drops the runs read to their end, keeping the slice's
// room for the next sends.
func (e *unixEP) pruneCredRuns() {
	k := 0
	for k < len(e.creds) && e.creds[k].end <= e.rxBase {
		k++
	}
	if k > 0 {
		e.creds = e.creds[:copy(e.creds, e.creds[k:])]
	}
}

// overflowIDs are the uid and gid a receiver sees for a message sent
// without credentials (Linux: from_kuid_munged of INVALID_UID).
var overflowIDs = sync.OnceValues(func() (uint32, uint32) {
	read := func(name string) uint32 {
		b, err := os.ReadFile("/proc/sys/kernel/" + name)
		if err != nil {
			return 65534
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			return 65534
		}
		return uint32(v)
	}
	return read("overflowuid"), read("overflowgid")
})

// dropRightsLocked takes every queued message's descriptors out of e,
// for the caller to release after unlocking.
func (e *unixEP) dropRightsLocked() []flightRef {
	var out []flightRef
	for _, m := range e.marks {
		out = append(out, m.rights...)
	}
	e.marks = nil
	for i := 0; i < e.rn; i++ {
		r := &e.recs[(e.rhead+i)%len(e.recs)]
		out = append(out, r.rights...)
		r.rights = nil
	}
	return out
}

// unixGCOnClose: Close runs the collector (off only in the test of the
// collection a send starts).
var unixGCOnClose = true

// UnixInflight is the number of socket references passed in SCM_RIGHTS
// messages and not yet received or closed.
func (n *Net) UnixInflight() int { return int(n.unix.inflight.Load()) }

// autobindCred binds e to an autobind name when SO_PASSCRED is on and e
// has no name, as Linux does before a connect or a datagram send, so
// that the receiver can see who sent.
func (e *unixEP) autobindCred() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.autobindCredLocked()
}

func (e *unixEP) autobindCredLocked() error {
	if !e.passcred || e.name != "" || e.state == unixClosed {
		return nil
	}
	k, err := e.sp.bind(e, "")
	if err != nil {
		return err
	}
	e.name = k
	return nil
}

// sendSeq is a seqpacket send (unix_seqpacket_sendmsg): connected only;
// an address is ignored; one message, whole, or EAGAIN while what the
// peer has not read fills our send buffer.
func (e *unixEP) sendSeq(b []byte, rights []flightRef, cred *Ucred) (int, bool, error) {
	e.mu.Lock()
	if e.err != 0 {
		err := e.err
		e.err = 0
		e.mu.Unlock()
		return 0, false, err
	}
	if e.state != unixConnected {
		e.mu.Unlock()
		return 0, false, syscall.ENOTCONN
	}
	limit := e.sndBuf()
	if len(b) > limit-unixDgramRoom {
		e.mu.Unlock()
		return 0, false, syscall.EMSGSIZE
	}
	p, from, passcred := e.peer, e.name, e.passcred
	e.mu.Unlock()
	p.mu.Lock()
	if p.state == unixClosed || p.shut&unixShutRcv != 0 {
		p.mu.Unlock()
		return 0, false, syscall.EPIPE
	}
	if int(e.sentq.Load()) >= limit {
		// Only our own charge counts: the receiver is connected back.
		p.mu.Unlock()
		e.sp.sndFull.Add(1)
		return 0, false, syscall.EAGAIN
	}
	if unixDgramTooBig(len(b)) {
		p.mu.Unlock()
		e.sp.tooBig.Add(1)
		return 0, false, syscall.ENOBUFS
	}
	p.enqueue(b, from, rights, attachCred(cred, passcred, p), e)
	p.mu.Unlock()
	p.wq.Notify(waiter.EventIn)
	return len(b), true, nil
}

// unixCtl reads a sendmsg control buffer for an AF_UNIX socket as
// Linux's __scm_send does: SOL_SOCKET only (other levels are passed
// over), SCM_RIGHTS (at most SCM_MAX_FD descriptors in all, each open:
// EBADF), SCM_CREDENTIALS (exactly a struct ucred; see checkCred); any
// other SOL_SOCKET type is EINVAL. On error no reference is kept. cred
// is the credentials given (nil: none).
func (n *Net) unixCtl(oob []byte) (rights []flightRef, cred *Ucred, err error) {
	err = walkCmsgs(oob, func(level, typ int, data []byte) error {
		if level != SOL_SOCKET {
			return nil
		}
		switch typ {
		case SCM_RIGHTS:
			num := len(data) / 4
			if num == 0 {
				return nil
			}
			if len(rights)+num > SCM_MAX_FD {
				n.unix.tooManyFDs.Add(1)
				return syscall.EINVAL
			}
			for i := 0; i < num; i++ {
				r, err := n.takeRef(int(int32(binary.NativeEndian.Uint32(data[4*i:]))))
				if err != nil {
					return err
				}
				rights = append(rights, r)
			}
			return nil
		case SCM_CREDENTIALS:
			if len(data) != 12 {
				return syscall.EINVAL
			}
			c := Ucred{
				Pid: int32(binary.NativeEndian.Uint32(data)),
				Uid: binary.NativeEndian.Uint32(data[4:]),
				Gid: binary.NativeEndian.Uint32(data[8:]),
			}
			if err := checkCred(c); err != nil {
				return err
			}
			cred = &c
			return nil
		}
		return syscall.EINVAL
	})
	if err == nil && len(rights) > 0 && n.unix.tooManyRefs(len(rights)) {
		err = syscall.ETOOMANYREFS
	}
	if err != nil {
		releaseRefs(rights)
		return nil, nil, err
	}
	return rights, cred, nil
}

// tooManyRefs is Linux's too_many_unix_fds, asked once the k references
// of a sendmsg are taken (and counted): the references in flight before
// them may not exceed RLIMIT_NOFILE, unless the caller has
// CAP_SYS_RESOURCE or CAP_SYS_ADMIN. As in Linux the check comes before
// the message's own descriptors count, so a sender may end up to
// SCM_MAX_FD past the limit. The counter is the Net's (one process),
// where Linux's is the user's.
func (sp *unixSpace) tooManyRefs(k int) bool {
	before := sp.inflight.Load() - int64(k)
	if before <= 0 {
		return false
	}
	limit := sp.nofile
	if limit == nil {
		limit = nofileLimit
	}
	if uint64(before) <= limit() {
		return false
	}
	capable := sp.capable
	if capable == nil {
		capable = resourceCapable
	}
	if capable() {
		return false
	}
	sp.tooMany.Add(1)
	return true
}

// nofileLimit is the process's soft RLIMIT_NOFILE (task_rlimit).
func nofileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return ^uint64(0)
	}
	return r.Cur
}

// resourceCapable reports whether the calling thread has CAP_SYS_RESOURCE
// or CAP_SYS_ADMIN in its effective set, as capable() asks of the
// sending task (capabilities are per thread in Linux).
func resourceCapable() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<capSysAdmin|1<<capSysResource) != 0
}

// UnixRightsStats counts the sendmsg calls the SCM_RIGHTS limits refused.
type UnixRightsStats struct {
	TooManyRefs uint64 // ETOOMANYREFS: references in flight past RLIMIT_NOFILE
	TooManyFDs  uint64 // EINVAL: more than SCM_MAX_FD descriptors in one call
}

// UnixRightsStats returns the counters of the SCM_RIGHTS limits.
func (n *Net) UnixRightsStats() UnixRightsStats {
	return UnixRightsStats{TooManyRefs: n.unix.tooMany.Load(), TooManyFDs: n.unix.tooManyFDs.Load()}
}

// CloseOnExec reports the descriptor's close-on-exec flag (fcntl
// F_GETFD's FD_CLOEXEC). It is set only by SetCloseOnExec or by a
// recvmsg with MSG_CMSG_CLOEXEC that installed the descriptor; a
// descriptor is not close-on-exec otherwise, as in Linux. sockstack
// runs no exec: the flag is kept for programs that hand descriptors on.
func (s *Socket) CloseOnExec() bool {
	sp := s.net.unix
	sp.fdmu.Lock()
	defer sp.fdmu.Unlock()
	return sp.cloexec[s.fd] == s && !s.closed.Load()
}

// SetCloseOnExec sets or clears the close-on-exec flag (fcntl F_SETFD).
// EBADF after Close.
func (s *Socket) SetCloseOnExec(on bool) error {
	if s.closed.Load() {
		return syscall.EBADF
	}
	sp := s.net.unix
	sp.fdmu.Lock()
	defer sp.fdmu.Unlock()
	if !on {
		if sp.cloexec[s.fd] == s {
			delete(sp.cloexec, s.fd)
		}
		return nil
	}
	if sp.cloexec == nil {
		sp.cloexec = map[int32]*Socket{}
	}
	if len(sp.cloexec) >= sp.cloexecGC {
		// Entries of closed sockets are dropped here, so the map stays
		// within twice the open flagged descriptors.
		for fd, x := range sp.cloexec {
			if x.closed.Load() {
				delete(sp.cloexec, fd)
			}
		}
		sp.cloexecGC = max(64, 2*len(sp.cloexec))
	}
	sp.cloexec[s.fd] = s
	return nil
}

// checkCred is scm_check_creds for a process without CAP_SYS_ADMIN,
// CAP_SETUID and CAP_SETGID: the pid must be ours, the uid our real or
// effective one, the gid our real or effective group; anything else is
// EPERM. sockstack applies this even to root: every socket of a Net is
// in this one process, so no other process's credentials can be true
// (see docs/DECISIONS.md). The receiver sees the process's credentials.
func checkCred(c Ucred) error {
	if int(c.Pid) != os.Getpid() {
		return syscall.EPERM
	}
	if int(c.Uid) != os.Getuid() && int(c.Uid) != os.Geteuid() {
		return syscall.EPERM
	}
	if int(c.Gid) != os.Getgid() && int(c.Gid) != os.Getegid() {
		return syscall.EPERM
	}
	return nil
}

// sendUnixControl is SendMsgControl on an AF_UNIX socket.
func (s *Socket) sendUnixControl(e *unixEP, b, oob []byte, flags int, to Sockaddr) (int, error) {
	sp := s.net.unix
	next := sp.gcNext.Load()
	if next == 0 {
		next = unixGCFirst
	}
	if in := sp.inflight.Load(); in >= next {
		// Many references in flight: look for cycles nobody can read,
		// as Linux's sendmsg does past UNIX_INFLIGHT_TRIGGER_GC.
		s.net.UnixGC()
		sp.gcNext.Store(max(unixGCFirst, 2*sp.inflight.Load()))
	}
	// References in our hands are in no queue: no collection meanwhile.
	sp.gc.RLock()
	defer sp.gc.RUnlock()
	rights, cred, err := s.net.unixCtl(oob)
	if err != nil {
		return 0, err
	}
	n, err := s.sendUnix(e, b, flags, to, rights, cred)
	return n, err
}

// unixGCFirst is how many references in flight make a sendmsg collect.
const unixGCFirst = 1024

// sendUnix is SendTo with descriptors: a blocking stream send passes
// them with its first bytes; a message socket with its one message.
func (s *Socket) sendUnix(e *unixEP, b []byte, flags int, to Sockaddr, rights []flightRef, cred *Ucred) (total int, err error) {
	defer func() {
		if rights != nil {
			releaseRefs(rights) // not sent
		}
	}()
	for {
		var n int
		err = s.blocking(flags, true, waiter.EventOut, func() error {
			var used bool
			var err error
			n, used, err = e.sendAtt(b[total:], flags, to, rights, cred)
			if used {
				rights = nil
			}
			return err
		})
		total += n
		if err != nil {
			if total > 0 && e.stream() {
				return total, nil
			}
			return total, err
		}
		nonblock, _ := s.mode(flags, true)
		if !e.stream() || total == len(b) || nonblock {
			return total, nil
		}
	}
}

// recvUnixControl is RecvMsgControl on an AF_UNIX socket: the data, then
// SCM_CREDENTIALS when SO_PASSCRED is on, then SCM_RIGHTS with as many
// of the passed descriptors as the buffer holds (MSG_CTRUNC and the
// others closed when it holds fewer, as Linux's scm_detach_fds).
func (s *Socket) recvUnixControl(e *unixEP, p, oob []byte, flags int) (n, oobn, rflags int, from Sockaddr, err error) {
	var anc unixAnc
	var full int
	sp := s.net.unix
	err = s.blocking(flags, false, waiter.EventIn, func() error {
		// From the dequeue until the references are installed or
		// released they are in no queue: no collection meanwhile (but
		// none is held off while the call waits).
		sp.gc.RLock()
		var err error
		n, full, from, err = e.recvAtt(p, flags&^MSG_CMSG_CLOEXEC, &anc)
		if err != nil {
			sp.gc.RUnlock()
		}
		return err
	})
	if err != nil {
		return 0, 0, 0, nil, err
	}
	defer sp.gc.RUnlock()
	if e.stream() && flags&MSG_PEEK == 0 && anc.msg && len(anc.rights) == 0 && n < len(p) {
		// MSG_WAITALL, or SO_RCVLOWAT above what came (rcvlowat.go).
		if target := s.recvTarget(flags, len(p)); n < target {
			n = s.unixWaitAll(e, p, n, target, flags, &anc)
		}
	}
	rights := anc.rights
	// Linux hands MSG_CMSG_CLOEXEC back in msg_flags (___sys_recvmsg
	// starts msg_flags with it).
	rflags = flags & MSG_CMSG_CLOEXEC
	if !e.stream() && full > n {
		rflags |= MSG_TRUNC
		if flags&MSG_TRUNC != 0 {
			n = full
		}
	}
	w := cmsgWriter{b: oob}
	if anc.msg {
		e.putStamp(&w, anc.at, s) // before the credentials, as Linux (unix_stamp.go)
	}
	e.mu.Lock()
	passcred := e.passcred
	e.mu.Unlock()
	// An end of file has no message: a datagram socket gives no
	// credentials then, a stream socket Linux's zeroed scm_cookie.
	if passcred && (anc.msg || e.stream()) {
		c := anc.cred.c
		if anc.msg && !anc.cred.ok {
			c.Uid, c.Gid = overflowIDs()
		}
		var d [12]byte
		binary.NativeEndian.PutUint32(d[0:], uint32(c.Pid))
		binary.NativeEndian.PutUint32(d[4:], c.Uid)
		binary.NativeEndian.PutUint32(d[8:], c.Gid)
		w.put(SOL_SOCKET, SCM_CREDENTIALS, d[:])
	}
	if len(rights) > 0 {
		fdmax := 0
		if room := len(oob) - w.n; room > cmsgHdrLen {
			fdmax = (room - cmsgHdrLen) / 4
		}
		k := min(fdmax, len(rights))
		if k > 0 {
			d := make([]byte, 4*k)
			for i, r := range rights[:k] {
				binary.NativeEndian.PutUint32(d[4*i:], uint32(r.install(s.net, flags&MSG_CMSG_CLOEXEC != 0)))
			}
			w.put(SOL_SOCKET, SCM_RIGHTS, d)
		}
		if k < len(rights) {
			w.trunc = true
			releaseRefs(rights[k:])
		}
	}
	if w.trunc {
		rflags |= MSG_CTRUNC
	}
	return n, w.n, rflags, from, nil
}

// errUnixCredBreak ends a MSG_WAITALL read at bytes sent with other
// credentials; it never reaches the caller.
var errUnixCredBreak = errors.New("credentials change")

// unixWaitAll continues a stream recvmsg with MSG_WAITALL or
// SO_RCVLOWAT after n bytes as unix_stream_read_generic does: it waits
// for more until it has target bytes (all of p with MSG_WAITALL),
// but ends after bytes that came with descriptors (taking them), before
// bytes sent with other credentials when SO_PASSCRED is on, at end of
// file, on an error or a timeout (returning what it has). Called with
// one hold of sp.gc, which it gives back while it waits and holds again
// on return.
func (s *Socket) unixWaitAll(e *unixEP, p []byte, n, target, flags int, anc *unixAnc) int {
	sp := s.net.unix
	sp.gc.RUnlock() // nothing in hand: no collection is held off while waiting
	held := false
	want := anc.cred
	for n < target && !held {
		var m int
		var more unixAnc
		more.want = &want
		err := s.blocking(flags, false, waiter.EventIn, func() error {
			sp.gc.RLock()
			var err error
			m, _, _, err = e.recvAtt(p[n:], flags&^MSG_CMSG_CLOEXEC, &more)
			if err != nil || len(more.rights) == 0 {
				sp.gc.RUnlock()
			} else {
				held = true
			}
			return err
		})
		if err != nil || m == 0 {
			break
		}
		n += m
		anc.rights = more.rights
	}
	if !held {
		sp.gc.RLock()
	}
	return n
}

// carry notes that e's queue holds references (call with e.mu held).
func (sp *unixSpace) carry(e *unixEP) {
	sp.cmu.Lock()
	if sp.carriers == nil {
		sp.carriers = map[*unixEP]struct{}{}
	}
	sp.carriers[e] = struct{}{}
	sp.cmu.Unlock()
}

// holdsRights reports whether e's queue holds references (e.mu held).
func (e *unixEP) holdsRights() bool {
	for _, m := range e.marks {
		if len(m.rights) > 0 {
			return true
		}
	}
	for i := 0; i < e.rn; i++ {
		if len(e.recs[(e.rhead+i)%len(e.recs)].rights) > 0 {
			return true
		}
	}
	return false
}

// queuedEndpoints lists the endpoints e's queue (and, for a listener,
// its connections not yet accepted) holds references to or owns.
func (e *unixEP) queuedEndpoints() []endpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []endpoint
	for _, m := range e.marks {
		for _, r := range m.rights {
			out = append(out, r.ep)
		}
	}
	for i := 0; i < e.rn; i++ {
		for _, r := range e.recs[(e.rhead+i)%len(e.recs)].rights {
			out = append(out, r.ep)
		}
	}
	for _, c := range e.acceptQ {
		out = append(out, c)
	}
	for _, pc := range e.pendingQ {
		out = append(out, pc.srv)
	}
	return out
}

// UnixGC closes AF_UNIX sockets that only messages in flight keep open,
// in a cycle no descriptor reaches (a socket passed into its own queue,
// two passed into each other's), as Linux's unix_gc does: the sockets
// the descriptor table holds are the roots, the references queued in
// reachable AF_UNIX sockets make what they name reachable, and the
// queued references of an unreachable socket are released. It returns
// how many sockets' queues it emptied. It does nothing (returns 0)
// while a send or a receive holds references outside any queue.
func (n *Net) UnixGC() int {
	sp := n.unix
	if sp.inflight.Load() == 0 || !sp.gc.TryLock() {
		return 0
	}
	sp.cmu.Lock()
	carriers := make([]*unixEP, 0, len(sp.carriers))
	for e := range sp.carriers {
		carriers = append(carriers, e)
	}
	sp.cmu.Unlock()
	reach := map[endpoint]bool{}
	var work []*unixEP
	for _, s := range n.Sockets() {
		if !reach[s.ep] {
			reach[s.ep] = true
			if u, ok := s.ep.(*unixEP); ok {
				work = append(work, u)
			}
		}
	}
	for len(work) > 0 {
		u := work[len(work)-1]
		work = work[:len(work)-1]
		for _, ep := range u.queuedEndpoints() {
			if !reach[ep] {
				reach[ep] = true
				if v, ok := ep.(*unixEP); ok {
					work = append(work, v)
				}
			}
		}
	}
	var drop []flightRef
	emptied := 0
	for _, e := range carriers {
		e.mu.Lock()
		holds := e.holdsRights()
		if holds && !reach[endpoint(e)] {
			drop = append(drop, e.dropRightsLocked()...)
			holds = false
			emptied++
		}
		e.mu.Unlock()
		if !holds {
			e.mu.Lock()
			if !e.holdsRights() {
				sp.cmu.Lock()
				delete(sp.carriers, e)
				sp.cmu.Unlock()
			}
			e.mu.Unlock()
		}
	}
	sp.gc.Unlock()
	releaseRefs(drop) // closes the sockets of the cycle, outside the lock
	return emptied
}
