package socket

import "testing"

// Throughput of a socketpair, a writer goroutine and a reader: stream
// writes of 64 KiB and of 100 bytes, datagrams of 100 bytes.
func BenchmarkUnixPair(b *testing.B) {
	for _, c := range []struct {
		name      string
		typ, size int
	}{{"stream64K", SOCK_STREAM, 65536}, {"stream100", SOCK_STREAM, 100}, {"dgram100", SOCK_DGRAM, 100}} {
		b.Run(c.name, func(b *testing.B) {
			n := newNet(b)
			x, y, _ := n.SocketPair(c.typ)
			defer x.Close()
			defer y.Close()
			msg := make([]byte, c.size)
			done := make(chan error, 1)
			total := b.N * c.size
			b.SetBytes(int64(c.size))
			b.ResetTimer()
			go func() {
				for i := 0; i < b.N; i++ {
					if _, err := x.Send(msg, 0); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			buf := make([]byte, 1<<17)
			for got := 0; got < total; {
				k, err := y.Recv(buf, 0)
				if err != nil {
					b.Fatal(err)
				}
				got += k
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}
