package stack

import (
	"net/netip"
	"testing"
)

// tinyFragments splits a UDP datagram of n*8 bytes (header included)
// into n eight-byte fragments; reverse lists them last first.
func tinyFragments(id uint16, n int, reverse bool) [][]byte {
	payload := udpPayload(peerAddr, hostAddr, 1, 5000, make([]byte, n*8-8))
	fr := fragments(id, payload, 8)
	if reverse {
		for i, j := 0, len(fr)-1; i < j; i, j = i+1, j-1 {
			fr[i], fr[j] = fr[j], fr[i]
		}
	}
	return fr
}

func benchReasm(b *testing.B, reverse bool) {
	h := newHarness(&testing.T{}, Options{ReasmMemLimit: 64 << 20})
	defer h.s.Close()
	e := h.s.NewDgram(KindUDP, 17)
	e.Bind(netip.AddrPortFrom(hostAddr, 5000))
	defer e.Close()
	e.SetRecvBuf(RmemMax)
	sets := make([][][]byte, 4)
	for i := range sets {
		sets[i] = tinyFragments(uint16(i), 8000, reverse)
	}
	buf := make([]byte, 65536)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.nic.DeliverFrames(sets[i%len(sets)])
		if n, _, _, err := e.RecvFrom(buf, false); err != nil || n != 8000*8-8 {
			b.Fatalf("reassembled %d bytes, %v", n, err)
		}
	}
}

// BenchmarkReassembly8000x8 reassembles one datagram sent as 8,000
// eight-byte fragments (ns/op is per datagram).
func BenchmarkReassembly8000x8InOrder(b *testing.B) { benchReasm(b, false) }
func BenchmarkReassembly8000x8Reverse(b *testing.B) { benchReasm(b, true) }
