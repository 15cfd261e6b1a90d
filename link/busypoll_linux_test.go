package link

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// pollRecv is a Receiver that counts the test's frames (EtherType
// 0x88b5) and notes, for each, whether a BusyPoll call of the test was
// running when it was delivered.
type pollRecv struct {
	polling atomic.Bool // set by the test around its BusyPoll calls
	mu      sync.Mutex
	byPoll  []bool
	at      []time.Time
	ch      chan struct{}
}

func (r *pollRecv) DeliverFrames(frames [][]byte) {
	for _, f := range frames {
		if len(f) < wire.EthernetHeaderLen || f[12] != 0x88 || f[13] != 0xb5 {
			continue
		}
		r.mu.Lock()
		r.byPoll = append(r.byPoll, r.polling.Load())
		r.at = append(r.at, time.Now())
		r.mu.Unlock()
		r.ch <- struct{}{}
	}
}

func (r *pollRecv) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byPoll)
}

func (r *pollRecv) wait(t *testing.T, n int) {
	t.Helper()
	waitFrames(t, r.ch, n)
}

// readyAt is a BusyWaiter ready once the receiver holds n frames.
type readyAt struct {
	r *pollRecv
	n int
}

func (w readyAt) BusyReady() bool  { return w.r.count() >= w.n }
func (w readyAt) BusyFlow() uint32 { return 0 }

// pollSetup opens an AF_PACKET endpoint on a veth with a pollRecv
// attached, and returns a func that sends it n test frames from the
// peer end.
func pollSetup(t *testing.T) (*AFPacket, *pollRecv, func(n int)) {
	t.Helper()
	ep, ns, peerMAC := openOnVeth(t, AFPacketOptions{})
	peer := openPeer(t, ns, false)
	peer.Attach(newCollector())
	r := &pollRecv{ch: make(chan struct{}, 1024)}
	ep.Attach(r)
	seq := 0
	send := func(n int) {
		t.Helper()
		var fs [][]byte
		for range n {
			fs = append(fs, testFrame(ep.HardwareAddr(), peerMAC, seq))
			seq++
		}
		if k, err := peer.WriteFrames(fs); k != n || err != nil {
			t.Fatalf("WriteFrames: %d, %v", k, err)
		}
	}
	return ep, r, send
}

// leasedSetup is pollSetup with a lease of an hour, which a blocking
// call then holds: it returned with the second frame sent (the first
// went to the reading goroutine), and r notes deliveries as the polls'.
func leasedSetup(t *testing.T) (*AFPacket, *pollRecv, func(n int)) {
	t.Helper()
	ep, r, send := pollSetup(t)
	ep.bp.lease.Store(int64(time.Hour))
	send(1)
	r.wait(t, 1)
	r.polling.Store(true)
	done := make(chan bool, 1)
	go func() { done <- ep.BusyPoll(readyAt{r, 2}, 5*time.Second) }()
	for end := time.Now().Add(10 * time.Second); ep.BusyPollStats().Polls != 1; {
		if time.Now().After(end) {
			t.Fatal("the call did not take the link")
		}
		time.Sleep(time.Millisecond)
	}
	send(1)
	if !<-done {
		t.Fatal("BusyPoll returned false with its frame delivered")
	}
	r.wait(t, 1)
	return ep, r, send
}

// BusyPoll takes the link from the reading goroutine: what comes while
// a call polls is read and delivered by the call, a call that returns
// with data keeps the link for busyLease (frames meanwhile wait, then
// the reading goroutine takes the link back), a call whose budget runs
// out gives it back at once, one call polls at a time, and Close ends a
// lease.
func TestAFPacketBusyPoll(t *testing.T) {
	ep, r, send := pollSetup(t)
	const lease = 300 * time.Millisecond
	ep.bp.lease.Store(int64(lease))
	// poll runs BusyPoll on another goroutine; the result comes on the
	// channel once it returns.
	poll := func(w BusyWaiter, budget time.Duration) <-chan bool {
		done := make(chan bool, 1)
		r.polling.Store(true)
		go func() {
			ok := ep.BusyPoll(w, budget)
			r.polling.Store(false)
			done <- ok
		}()
		return done
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// Before any call the reading goroutine delivers.
	send(2)
	r.wait(t, 2)

	// A call that polls: frames sent while it owns the link are its.
	// A call holds the reading state once it counted itself.
	polling := func(n uint64) func() bool {
		return func() bool { return ep.BusyPollStats().Polls == n }
	}
	done := poll(readyAt{r, 5}, 5*time.Second)
	waitFor("the call owns the link", polling(1))
	send(3)
	if !<-done {
		t.Fatal("BusyPoll returned false with the frames it waited for delivered")
	}
	r.wait(t, 3)
	st := ep.BusyPollStats()
	if st.Polls != 1 || st.Frames != 3 {
		t.Fatalf("BusyPollStats %+v after one call that read 3 frames", st)
	}
	// Returned with data: the link stays the caller's for the lease, so
	// the next frames wait for it, then for the reading goroutine.
	returned := time.Now()
	send(2)
	r.wait(t, 2)
	r.mu.Lock()
	for i, by := range r.byPoll {
		if want := i >= 2 && i < 5; by != want {
			t.Errorf("frame %d delivered during a BusyPoll call: %v, want %v", i, by, want)
		}
	}
	waited := r.at[5].Sub(returned)
	r.mu.Unlock()
	if waited < lease/2 {
		t.Errorf("a frame sent within the lease was delivered %v after the call returned; the lease is %v", waited, lease)
	}
	if st := ep.BusyPollStats(); st.Reclaimed != 1 {
		t.Errorf("Reclaimed %d after one lease ran out, want 1", st.Reclaimed)
	}
	t.Logf("a frame sent within the lease waited %v for the reading goroutine", waited)

	// A call whose budget runs out without data gives the link back at
	// once: the next frame is the reading goroutine's, no lease ends.
	if <-poll(readyAt{r, 1 << 30}, 5*time.Millisecond) {
		t.Fatal("BusyPoll reported ready with nothing to read")
	}
	if ep.bp.owned.Load() {
		t.Fatal("the link is still owned after a call that found nothing")
	}
	send(1)
	r.wait(t, 1)
	if st := ep.BusyPollStats(); st.Reclaimed != 1 {
		t.Errorf("Reclaimed %d, want still 1", st.Reclaimed)
	}

	// One call at a time: a second caller is refused at once.
	done = poll(readyAt{r, 1 << 30}, 2*time.Second)
	waitFor("the first call owns the link", polling(3))
	if ep.BusyPoll(readyAt{r, 0}, time.Second) {
		t.Error("a second caller polled while the first did")
	}
	<-done

	// Close ends a lease: a call returns with data, then Close returns.
	ep.bp.lease.Store(int64(time.Hour))
	done = poll(readyAt{r, r.count() + 1}, 5*time.Second)
	waitFor("the call owns the link", polling(4))
	send(1)
	if !<-done {
		t.Fatal("BusyPoll returned false with its frame delivered")
	}
	closed := make(chan error, 1)
	go func() { closed <- ep.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return while a busy poller held the link")
	}
	if ep.BusyPoll(readyAt{r, 0}, time.Second) {
		t.Error("BusyPoll polled a closed endpoint")
	}
}

// BusyPollOnce (a non-blocking read's poll) reads what the device holds
// and returns: it keeps a lease a blocking call holds, found data or
// not, and never starts one, so frames never wait for a caller that
// may next sleep elsewhere.
func TestAFPacketBusyPollOnce(t *testing.T) {
	ep, r, send := leasedSetup(t)

	// One-pass calls under the lease: those that find nothing keep it,
	// and the frames sent meanwhile are theirs, not the reading
	// goroutine's.
	send(2)
	empty := 0
	for end := time.Now().Add(10 * time.Second); !ep.BusyPollOnce(readyAt{r, 4}); empty++ {
		if time.Now().After(end) {
			t.Fatal("one-pass polls did not find the frames sent under the lease")
		}
		if !ep.bp.owned.Load() {
			t.Fatal("a one-pass poll that found nothing ended the lease")
		}
		time.Sleep(time.Millisecond)
	}
	r.wait(t, 2)
	if !ep.bp.owned.Load() {
		t.Fatal("a one-pass poll that found data ended the lease")
	}
	if st := ep.BusyPollStats(); st.OnceFrames != 2 || st.OncePolls != uint64(empty+1) || st.Frames != 3 {
		t.Fatalf("BusyPollStats %+v after %d one-pass calls that read 2 frames", st, empty+1)
	}
	if ep.BusyPollOnce(readyAt{r, 1 << 30}) || !ep.bp.owned.Load() {
		t.Fatal("a one-pass poll with nothing to read reported ready or ended the lease")
	}
	r.mu.Lock()
	for i, by := range r.byPoll {
		if want := i >= 1; by != want {
			t.Errorf("frame %d delivered by a poll: %v, want %v", i, by, want)
		}
	}
	r.mu.Unlock()
	t.Logf("%d one-pass polls found nothing before the frames came", empty)

	// A blocking call that finds nothing gives the link back; a
	// one-pass call then does not take it for longer than itself.
	if ep.BusyPoll(readyAt{r, 1 << 30}, time.Millisecond) || ep.bp.owned.Load() {
		t.Fatal("a blocking call that found nothing kept the link")
	}
	r.polling.Store(false)
	if !ep.BusyPollOnce(readyAt{r, 0}) {
		t.Fatal("a one-pass poll did not report a ready waiter")
	}
	if ep.bp.owned.Load() {
		t.Fatal("a one-pass poll on a link no call leased started a lease")
	}
	send(1)
	r.wait(t, 1) // the reading goroutine's
	if st := ep.BusyPollStats(); st.Reclaimed != 0 {
		t.Errorf("Reclaimed %d: no lease ran out", st.Reclaimed)
	}
}

// tunedReady is readyAt with SO_BUSY_POLL_BUDGET and SO_PREFER_BUSY_POLL
// (BusyTuner).
type tunedReady struct {
	readyAt
	frames int
	prefer bool
}

func (w tunedReady) BusyTune() (int, bool) { return w.frames, w.prefer }

// waitReadable waits until the endpoint's socket has a frame queued
// (poll(2) on it), so that the test's next poll finds it there.
func waitReadable(t *testing.T, ep *AFPacket) {
	t.Helper()
	var n int
	var perr error
	err := ep.rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, perr = unix.Poll(pfd, 10_000)
			if perr != unix.EINTR {
				return
			}
		}
	})
	if err != nil || perr != nil || n != 1 {
		t.Fatalf("waiting for a queued frame: %d, %v, %v", n, err, perr)
	}
}

// A waiter's budget (SO_BUSY_POLL_BUDGET) caps the frames one pass
// reads before it is asked again; preferring busy polling
// (SO_PREFER_BUSY_POLL) makes a one-pass call that finds data start a
// lease, so the next frames wait for the caller, not the reading
// goroutine.
func TestAFPacketBusyPollTune(t *testing.T) {
	// With the link leased, six frames queued: calls reading at most two
	// a pass, each returning once it delivered any, take three calls or
	// more for them.
	ep, r, send := leasedSetup(t)
	send(6)
	waitReadable(t, ep)
	calls := 0
	for end := time.Now().Add(10 * time.Second); r.count() < 8; {
		if time.Now().After(end) {
			t.Fatalf("one-pass calls delivered %d of 6 frames", r.count()-2)
		}
		before := ep.BusyPollStats().OnceFrames
		if ep.BusyPollOnce(tunedReady{readyAt{r, r.count() + 1}, 2, false}) {
			calls++
		}
		if got := ep.BusyPollStats().OnceFrames - before; got > 2 {
			t.Fatalf("a pass with a budget of 2 frames read %d", got)
		}
	}
	r.wait(t, 6)
	if calls < 3 {
		t.Fatalf("6 frames in %d calls of at most 2 frames", calls)
	}

	// Give the link back (a blocking call that finds nothing), then a
	// one-pass call finds a frame: without preferring it gives the link
	// back, preferring it keeps it.
	for _, prefer := range []bool{false, true} {
		if ep.BusyPoll(readyAt{r, 1 << 30}, time.Millisecond) || ep.bp.owned.Load() {
			t.Fatal("a blocking call that found nothing kept the link")
		}
		// The reading goroutine is kept out while the frame is queued:
		// the call owns the link before it can take it.
		ep.bp.mu.Lock()
		send(1)
		waitReadable(t, ep)
		got := make(chan bool, 1)
		go func() { got <- ep.BusyPollOnce(tunedReady{readyAt{r, r.count() + 1}, 0, prefer}) }()
		for end := time.Now().Add(10 * time.Second); !ep.bp.owned.Load(); {
			if time.Now().After(end) {
				t.Fatal("the one-pass call did not take the link")
			}
			time.Sleep(time.Millisecond)
		}
		ep.bp.mu.Unlock()
		if !<-got {
			t.Fatalf("prefer %v: the one-pass call did not deliver the queued frame", prefer)
		}
		r.wait(t, 1)
		if owned := ep.bp.owned.Load(); owned != prefer {
			t.Fatalf("prefer %v: the link is owned %v after a one-pass call that found data", prefer, owned)
		}
		want := uint64(0)
		if prefer {
			want = 1
		}
		if st := ep.BusyPollStats(); st.PreferLeases != want {
			t.Fatalf("prefer %v: PreferLeases %d, want %d", prefer, st.PreferLeases, want)
		}
	}
	// Under the lease the preferring call started, the next frame waits
	// for the next call.
	r.polling.Store(false)
	send(1)
	waitReadable(t, ep)
	r.polling.Store(true)
	ok := ep.BusyPollOnce(readyAt{r, r.count() + 1})
	r.polling.Store(false)
	if !ok {
		t.Fatal("a one-pass call under the lease did not find the frame")
	}
	r.wait(t, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.byPoll[len(r.byPoll)-1] {
		t.Error("the frame sent under the lease was delivered by the reading goroutine")
	}
}

// ReadCalls counts the recvmmsg calls of the reading goroutine: frames
// that arrive are read by at least one more call, never fewer calls
// than the batches that carried them.
func TestAFPacketReadCalls(t *testing.T) {
	ep, r, send := pollSetup(t)
	c0 := ep.ReadCalls()
	send(3)
	r.wait(t, 3)
	c1 := ep.ReadCalls()
	if c1 <= c0 {
		t.Fatalf("ReadCalls %d after 3 frames read, %d before", c1, c0)
	}
	send(1)
	r.wait(t, 1)
	if c2 := ep.ReadCalls(); c2 <= c1 {
		t.Fatalf("ReadCalls %d after one more frame, %d before", c2, c1)
	}
}
