package socket

import "testing"

// TestUnixSteadyAllocs: a stream or datagram send and receive allocate
// nothing in steady state, with or without SO_PASSCRED (the stream's
// credential runs are extended and reused, not appended per send).
func TestUnixSteadyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under -race")
	}
	for _, typ := range []int{SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET} {
		for _, pass := range []int{0, 1} {
			n := newNet(t)
			a, b, _ := n.SocketPair(typ)
			b.SetSockOptInt(SOL_SOCKET, SO_PASSCRED, pass)
			msg, buf := make([]byte, 64), make([]byte, 64)
			round := func() {
				if _, err := a.Send(msg, MSG_DONTWAIT); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Recv(buf, MSG_DONTWAIT); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 10; i++ {
				round()
			}
			if got := testing.AllocsPerRun(200, round); got != 0 {
				t.Errorf("type %d SO_PASSCRED %d: %.1f allocations per send and receive", typ, pass, got)
			}
		}
	}
}
