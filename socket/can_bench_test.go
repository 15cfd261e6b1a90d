package socket

import (
	"testing"

	"github.com/sockstack/sockstack/link"
)

// BenchmarkCANRawSendRecv: one frame through CAN_RAW sockets of two
// hosts: send, bus, filter, queue, recv.
func BenchmarkCANRawSendRecv(b *testing.B) {
	h := newCANHosts(b, link.CANBusOptions{})
	tx := canRawBound(b, h.a, "vcan0")
	rx := canRawBound(b, h.b, "vcan0")
	frame := pyFrame(0x123, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	buf := make([]byte, 16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tx.Send(frame, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := rx.Recv(buf, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
