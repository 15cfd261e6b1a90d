package wire

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// frame1500 builds an Ethernet frame carrying a 1500-byte IPv4/TCP packet
// with timestamps, as a bulk transfer sends it.
func frame1500() []byte {
	r := rand.New(rand.NewPCG(11, 12))
	f := make([]byte, 14+1500)
	PutEthernet(f, macB, macA, EtherTypeIPv4)
	ih := IPv4Header{TotalLen: 1500, ID: 1, DF: true, TTL: 64, Protocol: ProtoTCP, Src: ipA, Dst: ipB}
	hl := ih.Put(f[14:])
	th := TCPHeader{SrcPort: 50000, DstPort: 80, Seq: 1, Ack: 2, Flags: TCPFlagACK | TCPFlagPSH, Window: 501,
		Options: TCPOptions{HasTS: true, TSVal: 3, TSEcr: 4}}
	n := th.Put(f[14+hl:])
	for i := 14 + hl + n; i < len(f); i++ {
		f[i] = byte(r.Uint32())
	}
	TCP(f[14+hl:]).FillChecksum(IPv4(f[14:]).PseudoSum(1500 - hl))
	return f
}

var sink int

// BenchmarkParse1500 is the receive-side cost of one full-size segment:
// Ethernet, IPv4 (with header checksum), TCP (with checksum) and options.
func BenchmarkParse1500(b *testing.B) {
	f := frame1500()
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := ParseEthernet(f)
		if err != nil {
			b.Fatal(err)
		}
		h, err := ParseIPv4(f[e.HeaderLen:])
		if err != nil {
			b.Fatal(err)
		}
		s, err := ParseTCP(h.Payload(), h.PseudoSum(0), true)
		if err != nil {
			b.Fatal(err)
		}
		var o TCPOptions
		if err := ParseTCPOptions(s.Options(), &o); err != nil {
			b.Fatal(err)
		}
		sink += len(s.Payload())
	}
}

func BenchmarkChecksum(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{64, 1500, 65535} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sink += int(Checksum(buf))
			}
		})
		b.Run(fmt.Sprintf("naive/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				sink += int(naiveChecksum(buf))
			}
		})
	}
}
