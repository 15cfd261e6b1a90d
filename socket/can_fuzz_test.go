package socket

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/clock"
	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/wire"
)

// FuzzISOTPReceive feeds arbitrary frames to ISO-TP sockets (normal and
// extended addressing, classic and FD): nothing may panic, and whatever
// is delivered fits the socket's limit.
func FuzzISOTPReceive(f *testing.F) {
	f.Add([]byte{0x10, 20, 1, 2, 3, 4, 5, 6, 0x21, 7, 8, 9, 10, 11, 12, 13, 0x22, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte{0x30, 0, 0, 0x10, 0, 0, 0, 0, 0x20, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		clk := clock.NewManual(time.Unix(0, 0))
		h := newCANHosts(t, link.CANBusOptions{Clock: clk})
		plain := isotpSock(t, h.b, 0x7E0, 0x7E8, nil)
		ext := isotpSock(t, h.b, 0x7E1, 0x7E9, func(s *Socket) {
			_ = s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_OPTS, ISOTPOptions{Flags: CAN_ISOTP_EXTEND_ADDR | CAN_ISOTP_CHK_PAD_DATA, ExtAddress: 0x10})
		})
		fd := isotpSock(t, h.b, 0x7E2, 0x7EA, func(s *Socket) {
			_ = s.SetSockOpt(SOL_CAN_ISOTP, CAN_ISOTP_LL_OPTS, ISOTPLLOptions{MTU: CANFD_MTU, TxDL: 64})
		})
		sender := isotpSock(t, h.b, 0x7E3, 0x7EB, nil)
		_, _ = sender.Send(make([]byte, 100), 0)
		ids := []uint32{0x7E0, 0x7E1, 0x7E2, 0x7E3}
		for i := 0; len(b) > 0; i++ {
			n := min(int(b[0]&0x3F), len(b)-1)
			fr := wire.CANFrame{ID: ids[i%len(ids)]}
			if n > 8 {
				fr.Flags = wire.CANFDFDF
				n = wire.CANFDDLCToLen(wire.CANFDLenToDLC(n))
				n = min(n, len(b)-1)
			}
			fr.Len = uint8(n)
			copy(fr.Data[:], b[1:1+n])
			_ = h.ia.Send(&fr, nil, true)
			b = b[1+n:]
			clk.Advance(300 * time.Millisecond)
		}
		clk.Advance(2 * time.Second)
		buf := make([]byte, isotpMaxPDU+1)
		for _, s := range []*Socket{plain, ext, fd, sender} {
			for {
				n, err := s.Recv(buf, 0)
				if errors.Is(err, syscall.EAGAIN) {
					break
				}
				if n > isotpMaxPDU {
					t.Fatalf("message of %d bytes", n)
				}
			}
		}
	})
}

// FuzzBCMSend writes arbitrary commands to a BCM socket: errors are
// fine, panics are not, and cycles started stay bounded in time.
func FuzzBCMSend(f *testing.F) {
	f.Add((&BCMMsg{Opcode: TX_SETUP, Flags: SETTIMER | STARTTIMER, Count: 2, Ival1: time.Millisecond, Ival2: time.Second, CANID: 1,
		Frames: []wire.CANFrame{{ID: 1, Len: 1}}}).Marshal())
	f.Add((&BCMMsg{Opcode: RX_SETUP, Flags: SETTIMER | STARTTIMER, Ival1: time.Millisecond, CANID: 1}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		clk := clock.NewManual(time.Unix(0, 0))
		h := newCANHosts(t, link.CANBusOptions{Clock: clk})
		s := bcmSock(t, h.a)
		_, _ = s.Send(b, 0)
		clk.Advance(10 * time.Millisecond)
		_, _ = s.Recv(make([]byte, 1<<16), 0)
	})
}
