package socket

import (
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// BenchmarkUDP64SendTxStamp is BenchmarkUDP64Send with a TX_SOFTWARE
// report per send, read back each time (OPT_TSONLY: no packet copy
// kept), to set the cost of a report beside a plain send.
func BenchmarkUDP64SendTxStamp(b *testing.B) {
	p := newPair(b, 1500, stack.Options{})
	rcv := mustSocket(b, p.b, AF_INET, SOCK_DGRAM, 0)
	rcv.Bind(ap(addrB, 9000))
	snd := mustSocket(b, p.a, AF_INET, SOCK_DGRAM, 0)
	snd.Connect(ap(addrB, 9000))
	if err := snd.SetSockOpt(SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_TX_SOFTWARE|SOF_TIMESTAMPING_SOFTWARE|SOF_TIMESTAMPING_OPT_TSONLY); err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 64)
	buf, oob := make([]byte, 64), make([]byte, 256)
	snd.Send(msg, 0)
	time.Sleep(10 * time.Millisecond) // ARP resolution before timing (benchmark, not a test)
	snd.RecvMsgControl(buf, oob, MSG_ERRQUEUE)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snd.Send(msg, 0)
		if _, _, _, _, err := snd.RecvMsgControl(buf, oob, MSG_ERRQUEUE); err != nil {
			b.Fatal(err)
		}
	}
}
