package link

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// lendingRecv keeps every frame whose first byte is odd.
type lendingRecv struct {
	l     Lender
	kept  []Loan
	views [][]byte
	got   chan int
}

func (r *lendingRecv) SetLender(l Lender) { r.l = l }

func (r *lendingRecv) DeliverFrames(frames [][]byte) {
	for _, f := range frames {
		if f[0]%2 == 1 {
			b := r.l.Lend(f[1:])
			if b == nil {
				panic("lend refused")
			}
			if r.l.Lend(f) != nil {
				panic("a buffer lent twice")
			}
			r.kept = append(r.kept, b)
			r.views = append(r.views, f)
		}
		r.got <- int(f[0])
	}
}

// TestLendKeepsBuffer: a frame's buffer taken by the receiver is not
// read into again; the endpoint reads the next frames into fresh ones.
func TestLendKeepsBuffer(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	e := &fdEndpoint{name: "pair", mtu: 1500}
	if err := e.initFD(fds[0], "pair", 4, LendBufLen); err != nil {
		t.Fatal(err)
	}
	e.initLend()
	e.readFn, e.writeFn = e.readEach, e.writeOne
	r := &lendingRecv{got: make(chan int, 16)}
	e.Attach(r)
	defer e.Close()
	if r.l == nil {
		t.Fatal("the receiver was not told its lender")
	}
	frame := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000+i) }
	for i := 1; i <= 9; i++ {
		if _, err := unix.Write(fds[1], frame(i)); err != nil {
			t.Fatal(err)
		}
		if got := <-r.got; got != i {
			t.Fatalf("frame %d delivered as %d", i, got)
		}
	}
	if len(r.kept) != 5 {
		t.Fatalf("kept %d frames, want 5", len(r.kept))
	}
	for k, v := range r.views {
		if i := 2*k + 1; !bytes.Equal(v, frame(i)) {
			t.Fatalf("kept frame %d was overwritten", i)
		}
	}
	for _, b := range r.kept {
		b.Release()
	}
}
