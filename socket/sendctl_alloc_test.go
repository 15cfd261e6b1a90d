package socket

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/sockstack/sockstack/stack"
)

// Reading control messages (IP_TTL, IP_TOS, UDP_SEGMENT, IP_PKTINFO)
// allocates nothing: measured on the reading alone, since the send's
// buffer pool allocates at random under -race.
func TestSendCtlAllocs(t *testing.T) {
	n := New(stack.New(stack.Options{}))
	s := mustSocket(t, n, AF_INET, SOCK_DGRAM, 0)
	oob := append(ctlInt(SOL_IP, IP_TTL, 7), ctlInt(SOL_IP, IP_TOS, 0x10)...)
	oob = append(oob, cmsgBytes(SOL_UDP, UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1024))...)
	oob = append(oob, cmsgBytes(SOL_IP, IP_PKTINFO, []byte{0, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0})...)
	d := s.ep.(*dgramEP)
	to := Inet("127.0.0.1", 9).AddrPort
	var o stack.SendOpts
	got := testing.AllocsPerRun(200, func() {
		var err error
		if o, err = d.sendOptsCtl(to, oob, nil); err != nil {
			t.Fatal(err)
		}
	})
	if got != 0 {
		t.Fatalf("%.1f allocations per control buffer", got)
	}
	if !o.TTLSet || o.TTL != 7 || !o.TOSSet || o.TOS != 0x10 || !o.GSOSet || o.GSOSize != 1024 || o.Src.String() != "127.0.0.1" {
		t.Fatalf("read %+v", o)
	}
}

// BenchmarkSendMsgControl is a loopback UDP send and read, plain and
// with four control messages (IP_TTL, IP_TOS, UDP_SEGMENT, IP_PKTINFO).
func BenchmarkSendMsgControl(b *testing.B) {
	n := New(stack.New(stack.Options{}))
	r := mustSocket(b, n, AF_INET, SOCK_DGRAM, 0)
	if err := r.Bind(Inet("127.0.0.1", 0)); err != nil {
		b.Fatal(err)
	}
	ra, _ := r.GetSockName()
	s := mustSocket(b, n, AF_INET, SOCK_DGRAM, 0)
	oob := append(cmsgBytes(SOL_IP, IP_TTL, binary.NativeEndian.AppendUint32(nil, 7)), cmsgBytes(SOL_IP, IP_TOS, []byte{0x10})...)
	oob = append(oob, cmsgBytes(SOL_UDP, UDP_SEGMENT, binary.NativeEndian.AppendUint16(nil, 1024))...)
	oob = append(oob, cmsgBytes(SOL_IP, IP_PKTINFO, []byte{0, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0})...)
	p, buf := make([]byte, 64), make([]byte, 128)
	r.SetTimeout(5 * time.Second)
	for _, c := range []struct {
		name string
		oob  []byte
	}{{"plain", nil}, {"four messages", oob}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := s.SendMsgControl(p, c.oob, 0, ra); err != nil {
					b.Fatal(err)
				}
				if _, err := r.Recv(buf, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
