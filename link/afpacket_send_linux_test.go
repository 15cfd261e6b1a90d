package link

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sockstack/sockstack/wire"
)

// testFrame is an Ethernet frame from src to dst carrying seq.
func testFrame(dst, src wire.MAC, seq int) []byte {
	f := make([]byte, 100)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	f[12], f[13] = 0x88, 0xb5 // local experimental EtherType
	copy(f[14:], fmt.Sprintf("frame %d", seq))
	return f
}

// packetProtos lists the protocol column of /proc/net/packet for the
// sockets bound to ifindex in ns.
func packetProtos(t *testing.T, ns string, ifindex int) []string {
	t.Helper()
	var protos []string
	err := inNetns(ns, func() error {
		f, err := os.Open("/proc/thread-self/net/packet") // this thread is in ns
		if err != nil {
			return err
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		s.Scan() // header: sk RefCnt Type Proto Iface R Rmem User Inode
		for s.Scan() {
			c := strings.Fields(s.Text())
			if len(c) >= 5 && c[4] == fmt.Sprint(ifindex) {
				protos = append(protos, c[3])
			}
		}
		return s.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return protos
}

// Without rings the endpoint sends on a socket of its own, bound with
// protocol 0, so that what it sends never wakes the poller of the
// socket it reads (afpacket_linux.go, sendSocketSetup). Frames still leave
// in order, none of them comes back to the endpoint's reader (also
// without PACKET_QDISC_BYPASS, where the kernel shows packet sockets
// what others send), and what the peer sends still arrives.
func TestAFPacketSendSocket(t *testing.T) {
	for _, bypass := range []bool{false, true} {
		t.Run(fmt.Sprintf("qdisc_bypass_%v", bypass), func(t *testing.T) {
			ep, ns, peerMAC := openOnVeth(t, AFPacketOptions{QdiscBypass: bypass})
			if !ep.sendOwn {
				t.Fatal("no send socket without rings")
			}
			if got := packetProtos(t, ns, ep.Ifindex()); len(got) != 2 || !(got[0] == "0000" && got[1] == "0003" || got[0] == "0003" && got[1] == "0000") {
				t.Fatalf("packet sockets on the interface, by protocol: %v; want one of ETH_P_ALL (0003) and one of 0", got)
			}
			peer := openPeer(t, ns, false)
			mine, theirs := newCollector(), newCollector()
			ep.Attach(mine)
			peer.Attach(theirs)
			const n = 200
			var frames [][]byte
			for i := range n {
				frames = append(frames, testFrame(peerMAC, ep.HardwareAddr(), i))
			}
			if k, err := ep.WriteFrames(frames); k != n || err != nil {
				t.Fatalf("WriteFrames: %d, %v", k, err)
			}
			theirs.wait(t, n)
			for i, f := range theirs.got() {
				if !bytes.Equal(f, frames[i]) {
					t.Fatalf("frame %d arrived as %q, want %q", i, f[14:24], frames[i][14:24])
				}
			}
			// The peer's frame is a barrier: anything of ours that came
			// back would have been read before it.
			back := testFrame(ep.HardwareAddr(), peerMAC, 9999)
			if _, err := peer.WriteFrames([][]byte{back}); err != nil {
				t.Fatal(err)
			}
			mine.wait(t, 1)
			if got := mine.got(); len(got) != 1 || !bytes.Equal(got[0], back) {
				t.Fatalf("the endpoint read %d frames, want only the peer's one", len(got))
			}
			if s := ep.Stats(); s.TxFrames.Load() != n || s.TxDropped.Load() != 0 {
				t.Fatalf("TxFrames %d, TxDropped %d; want %d, 0", s.TxFrames.Load(), s.TxDropped.Load(), n)
			}
		})
	}
}

// Close while writers are sending: every write either completes or
// reports ErrClosed, and the send socket is closed only once no writer
// is inside it (the race detector and the fd's reuse would tell).
func TestAFPacketSendSocketClose(t *testing.T) {
	ep, _, peerMAC := openOnVeth(t, AFPacketOptions{QdiscBypass: true})
	if !ep.sendOwn {
		t.Fatal("no send socket without rings")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	started := make(chan struct{}, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := [][]byte{testFrame(peerMAC, ep.HardwareAddr(), w)}
			started <- struct{}{}
			for {
				if _, err := ep.WriteFrames(f); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 4 {
		<-started
	}
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("a write after Close: %v, want ErrClosed", err)
		}
	}
	if ep.sendOwn {
		t.Fatal("the send socket is still open after Close")
	}
}

// A holder (TCP's flusher, through the stack) holds an AF_PACKET
// socket's writes as the reader does while it delivers: frames written
// one by one leave together, in one sendmmsg or one kick of the
// transmit ring, when FlushHeld asks or the last holder lets go, not
// before. Holds nest. With Offload nothing is held.
func TestAFPacketHoldWrites(t *testing.T) {
	for _, c := range []struct {
		name string
		opts AFPacketOptions
		held bool
	}{
		{"mmsg", AFPacketOptions{}, true},
		{"tx_ring", AFPacketOptions{Ring: true}, true},
		{"offload", AFPacketOptions{Offload: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ep, ns, peerMAC := openOnVeth(t, c.opts)
			peer := openPeer(t, ns, false)
			theirs := newCollector()
			ep.Attach(newCollector())
			peer.Attach(theirs)
			seq := 0
			write := func(n int) {
				for range n {
					if _, err := ep.WriteFrames([][]byte{testFrame(peerMAC, ep.HardwareAddr(), seq)}); err != nil {
						t.Fatal(err)
					}
					seq++
				}
			}
			calls := func() uint64 { return ep.WriteCalls() }
			c0 := calls()
			ep.HoldWrites(true)
			ep.HoldWrites(true) // a second holder
			write(5)
			if !c.held {
				if w := calls() - c0; w != 5 {
					t.Fatalf("%d calls for 5 frames with Offload, want one each", w)
				}
				ep.HoldWrites(false)
				ep.HoldWrites(false)
				theirs.wait(t, 5)
				return
			}
			if w := calls() - c0; w != 0 {
				t.Fatalf("%d calls while held", w)
			}
			ep.FlushHeld()
			if w := calls() - c0; w != 1 {
				t.Fatalf("FlushHeld made %d calls, want 1", w)
			}
			theirs.wait(t, 5)
			write(5)
			ep.HoldWrites(false) // one holder left: still held
			if w := calls() - c0; w != 1 {
				t.Fatalf("%d calls with a holder left, want 1", w)
			}
			ep.HoldWrites(false)
			if w := calls() - c0; w != 2 {
				t.Fatalf("%d calls after the last holder let go, want 2", w)
			}
			ep.HoldWrites(false) // no holder: counts for nothing
			write(1)
			if w := calls() - c0; w != 3 {
				t.Fatalf("%d calls for a frame written with no holder, want 3", w)
			}
			theirs.wait(t, 6)
			for i, f := range theirs.got() {
				if want := testFrame(peerMAC, ep.HardwareAddr(), i); !bytes.Equal(f, want) {
					t.Fatalf("frame %d arrived as %q", i, f[14:24])
				}
			}
		})
	}
}
