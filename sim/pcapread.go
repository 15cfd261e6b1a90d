package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// PcapRecord is one captured frame.
type PcapRecord struct {
	T    time.Time
	Data []byte
}

// ReadPcap reads a classic libpcap file (either byte order, micro- or
// nanosecond stamps) with Ethernet, raw-IP or Linux cooked (SLL, SLL2:
// what tcpdump -i any writes) frames. The others get a blank Ethernet
// header with their protocol, so callers see one format.
func ReadPcap(r io.Reader, limit int) ([]PcapRecord, error) {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("pcap: short file header: %w", err)
	}
	var bo binary.ByteOrder
	nano := false
	switch m := binary.LittleEndian.Uint32(h[:]); m {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("pcap: bad magic %#x (pcapng is not supported; convert with editcap -F pcap)", m)
	}
	lt := bo.Uint32(h[20:])
	// hdr is the link header to replace; proto is where its EtherType
	// is (-1: raw IP, IPv4 or IPv6 by its version).
	hdr, proto := 0, 0
	switch lt {
	case 1:
	case 101, 228, 229: // raw IP, raw IPv4, raw IPv6
		proto = -1
	case 113: // Linux cooked v1: 16 bytes, protocol last
		hdr, proto = 16, 14
	case 276: // Linux cooked v2: 20 bytes, protocol first
		hdr, proto = 20, 0
	default:
		return nil, fmt.Errorf("pcap: link type %d not supported (Ethernet, raw IP, Linux cooked)", lt)
	}
	var out []PcapRecord
	for limit <= 0 || len(out) < limit {
		var rh [16]byte
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("pcap: truncated record header")
		}
		sec, frac := bo.Uint32(rh[0:]), bo.Uint32(rh[4:])
		incl := bo.Uint32(rh[8:])
		if incl > 1<<20 {
			return out, fmt.Errorf("pcap: record of %d bytes", incl)
		}
		b := make([]byte, 14+int(incl))
		if _, err := io.ReadFull(r, b[14:]); err != nil {
			return out, fmt.Errorf("pcap: truncated record")
		}
		switch {
		case lt == 1:
			b = b[14:]
		case proto < 0:
			b[12], b[13] = 0x08, 0x00
			if incl > 0 && b[14]>>4 == 6 {
				b[12], b[13] = 0x86, 0xdd
			}
		case int(incl) < hdr:
			continue // shorter than its link header: nothing to read
		default:
			// A blank Ethernet header with the cooked header's protocol
			// in place of the cooked header.
			b[12+hdr], b[13+hdr] = b[14+proto], b[15+proto]
			b = b[hdr:]
			clear(b[:12])
		}
		ns := int64(frac) * 1000
		if nano {
			ns = int64(frac)
		}
		out = append(out, PcapRecord{T: time.Unix(int64(sec), ns).UTC(), Data: b})
	}
	return out, nil
}
