package link

import (
	"io"
	"sync"
	"time"

	"github.com/sockstack/sockstack/wire"
)

// LinkTypeCANSocketCAN is LINKTYPE_CAN_SOCKETCAN: each record is a
// SocketCAN frame with the id in network byte order; Wireshark decodes
// it as CAN or CAN FD.
const LinkTypeCANSocketCAN uint32 = 227

// CANPcap records every frame a CAN bus carries into a pcap file.
type CANPcap struct {
	w   *PcapWriter
	mu  sync.Mutex
	buf [wire.CANFDMTU]byte
	bus *CANBus
}

// NewCANPcap writes the file header to w and taps bus. Close removes the
// tap and flushes (w itself stays open).
func NewCANPcap(bus *CANBus, w io.Writer, opts ...PcapOptions) (*CANPcap, error) {
	var o PcapOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	pw, err := NewPcapWriter(w, LinkTypeCANSocketCAN, o)
	if err != nil {
		return nil, err
	}
	p := &CANPcap{w: pw, bus: bus}
	bus.SetTap(p.record)
	return p, nil
}

func (p *CANPcap) record(ts time.Time, f *wire.CANFrame) {
	p.mu.Lock()
	n := wire.PutSocketCANPcap(p.buf[:], f)
	// Write errors are counted by the writer; the bus goes on.
	_ = p.w.WriteFrame(ts, p.buf[:n])
	p.mu.Unlock()
}

// Writer is the underlying PcapWriter (counters).
func (p *CANPcap) Writer() *PcapWriter { return p.w }

// Close stops recording and flushes.
func (p *CANPcap) Close() error {
	p.bus.SetTap(nil)
	return p.w.Flush()
}
