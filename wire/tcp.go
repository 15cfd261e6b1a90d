package wire

import "encoding/binary"

// TCP flags.
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// TCP option kinds.
const (
	TCPOptEnd           = 0
	TCPOptNOP           = 1
	TCPOptMSS           = 2
	TCPOptWScale        = 3
	TCPOptSACKPermitted = 4
	TCPOptSACK          = 5
	TCPOptTimestamps    = 8
)

// TCPMinHeaderLen is the header length without options; TCPMaxHeaderLen with 40 bytes of them.
const (
	TCPMinHeaderLen = 20
	TCPMaxHeaderLen = 60
)

// TCP is a view of a TCP segment.
type TCP []byte

func (t TCP) SrcPort() uint16      { return binary.BigEndian.Uint16(t[0:2]) }
func (t TCP) DstPort() uint16      { return binary.BigEndian.Uint16(t[2:4]) }
func (t TCP) Seq() uint32          { return binary.BigEndian.Uint32(t[4:8]) }
func (t TCP) Ack() uint32          { return binary.BigEndian.Uint32(t[8:12]) }
func (t TCP) DataOffset() int      { return int(t[12]>>4) * 4 }
func (t TCP) Flags() uint8         { return t[13] }
func (t TCP) Window() uint16       { return binary.BigEndian.Uint16(t[14:16]) }
func (t TCP) Checksum() uint16     { return binary.BigEndian.Uint16(t[16:18]) }
func (t TCP) Urgent() uint16       { return binary.BigEndian.Uint16(t[18:20]) }
func (t TCP) Options() []byte      { return t[TCPMinHeaderLen:t.DataOffset()] }
func (t TCP) Payload() []byte      { return t[t.DataOffset():] }
func (t TCP) SetSrcPort(p uint16)  { binary.BigEndian.PutUint16(t[0:2], p) }
func (t TCP) SetDstPort(p uint16)  { binary.BigEndian.PutUint16(t[2:4], p) }
func (t TCP) SetSeq(v uint32)      { binary.BigEndian.PutUint32(t[4:8], v) }
func (t TCP) SetAck(v uint32)      { binary.BigEndian.PutUint32(t[8:12], v) }
func (t TCP) SetDataOffset(n int)  { t[12] = byte(n/4) << 4 }
func (t TCP) SetFlags(f uint8)     { t[13] = f }
func (t TCP) SetWindow(w uint16)   { binary.BigEndian.PutUint16(t[14:16], w) }
func (t TCP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(t[16:18], c) }
func (t TCP) SetUrgent(u uint16)   { binary.BigEndian.PutUint16(t[18:20], u) }

// FillChecksum computes the checksum; pseudo is the pseudo-header sum
// including the segment length.
func (t TCP) FillChecksum(pseudo uint64) {
	t.SetChecksum(0)
	t.SetChecksum(^Fold(Sum(t, pseudo)))
}

// ParseTCP checks the data offset and, with verify, the checksum; pseudo
// is the pseudo-header sum with a length of zero.
func ParseTCP(b []byte, pseudo uint64, verify bool) (TCP, error) {
	if len(b) < TCPMinHeaderLen {
		return nil, errTCPTruncated
	}
	t := TCP(b)
	off := t.DataOffset()
	if off < TCPMinHeaderLen || off > len(b) {
		return nil, errTCPOffset
	}
	if verify && Fold(Sum(b, pseudo+uint64(len(b)))) != 0xffff {
		return nil, errTCPChecksum
	}
	return t, nil
}

// SACKBlock is one SACK range [Left, Right) in sequence space.
type SACKBlock struct{ Left, Right uint32 }

// TCPOptions are the options sockstack understands (RFC 9293 MSS,
// RFC 7323 window scale and timestamps, RFC 2018 SACK).
type TCPOptions struct {
	MSS           uint16
	WScale        uint8
	HasMSS        bool
	HasWScale     bool
	SACKPermitted bool
	HasTS         bool
	TSVal, TSEcr  uint32
	NumSACK       int
	SACK          [4]SACKBlock
}

// ParseTCPOptions reads an option list; unknown options are skipped by
// their length. A length that is impossible is an error (the segment is
// still processed by callers that choose to, as Linux does, but we drop).
func ParseTCPOptions(o []byte, opts *TCPOptions) error {
	*opts = TCPOptions{}
	for i := 0; i < len(o); {
		kind := o[i]
		if kind == TCPOptEnd {
			return nil
		}
		if kind == TCPOptNOP {
			i++
			continue
		}
		if i+1 >= len(o) {
			return errTCPOption
		}
		l := int(o[i+1])
		if l < 2 || i+l > len(o) {
			return errTCPOption
		}
		v := o[i+2 : i+l]
		switch kind {
		case TCPOptMSS:
			if l == 4 {
				opts.HasMSS = true
				opts.MSS = binary.BigEndian.Uint16(v)
			}
		case TCPOptWScale:
			if l == 3 {
				opts.HasWScale = true
				opts.WScale = min(v[0], 14) // RFC 7323 2.3: treat > 14 as 14
			}
		case TCPOptSACKPermitted:
			if l == 2 {
				opts.SACKPermitted = true
			}
		case TCPOptSACK:
			if (l-2)%8 == 0 {
				n := (l - 2) / 8
				for j := 0; j < n && j < len(opts.SACK); j++ {
					opts.SACK[j] = SACKBlock{binary.BigEndian.Uint32(v[j*8:]), binary.BigEndian.Uint32(v[j*8+4:])}
				}
				opts.NumSACK = min(n, len(opts.SACK))
			}
		case TCPOptTimestamps:
			if l == 10 {
				opts.HasTS = true
				opts.TSVal = binary.BigEndian.Uint32(v[0:4])
				opts.TSEcr = binary.BigEndian.Uint32(v[4:8])
			}
		}
		i += l
	}
	return nil
}

// TCPMaxOptionsLen is the room the data offset leaves for options.
const TCPMaxOptionsLen = TCPMaxHeaderLen - TCPMinHeaderLen

// sackFit is how many SACK blocks Put writes: NumSACK, capped by the array
// and by the space the other options leave in 40 bytes (3 blocks beside
// timestamps, as Linux sends).
func (o *TCPOptions) sackFit() int {
	n := min(max(o.NumSACK, 0), len(o.SACK))
	if n == 0 {
		return 0
	}
	room := (TCPMaxOptionsLen - o.lenNoSACK() - 4) / 8
	return max(min(n, room), 0)
}

// Len is the padded length Put writes (at most 40).
func (o *TCPOptions) Len() int {
	n := o.lenNoSACK()
	if k := o.sackFit(); k > 0 {
		n += 4 + 8*k // NOP NOP kind len + blocks
	}
	return n
}

func (o *TCPOptions) lenNoSACK() int {
	n := 0
	if o.HasMSS {
		n += 4
	}
	if o.HasWScale {
		n += 4 // NOP + 3
	}
	if o.SACKPermitted && !o.HasTS {
		n += 4 // NOP NOP + 2
	}
	if o.HasTS {
		n += 12 // (SACK-permitted or NOP NOP) + 10
	}
	return n
}

// Put writes the options in the layout Linux uses (MSS, SACK-permitted
// with timestamps, NOP + window scale, NOP NOP + SACK blocks), each
// aligned to 4 bytes, and returns the length written. SACK blocks that do
// not fit in 40 bytes are left out (the first ones are kept: RFC 2018 asks
// for the most recent block first).
func (o *TCPOptions) Put(b []byte) int {
	i := 0
	if o.HasMSS {
		b[i], b[i+1] = TCPOptMSS, 4
		binary.BigEndian.PutUint16(b[i+2:], o.MSS)
		i += 4
	}
	if o.HasTS {
		if o.SACKPermitted {
			b[i], b[i+1] = TCPOptSACKPermitted, 2
		} else {
			b[i], b[i+1] = TCPOptNOP, TCPOptNOP
		}
		b[i+2], b[i+3] = TCPOptTimestamps, 10
		binary.BigEndian.PutUint32(b[i+4:], o.TSVal)
		binary.BigEndian.PutUint32(b[i+8:], o.TSEcr)
		i += 12
	} else if o.SACKPermitted {
		b[i], b[i+1], b[i+2], b[i+3] = TCPOptNOP, TCPOptNOP, TCPOptSACKPermitted, 2
		i += 4
	}
	if o.HasWScale {
		b[i], b[i+1], b[i+2], b[i+3] = TCPOptNOP, TCPOptWScale, 3, o.WScale
		i += 4
	}
	if k := o.sackFit(); k > 0 {
		b[i], b[i+1], b[i+2], b[i+3] = TCPOptNOP, TCPOptNOP, TCPOptSACK, byte(2+8*k)
		i += 4
		for j := 0; j < k; j++ {
			binary.BigEndian.PutUint32(b[i:], o.SACK[j].Left)
			binary.BigEndian.PutUint32(b[i+4:], o.SACK[j].Right)
			i += 8
		}
	}
	return i
}

// TCPHeader is the content of a TCP header for building segments.
type TCPHeader struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	Urgent           uint16
	Options          TCPOptions
}

// Len is the header length Put writes.
func (h *TCPHeader) Len() int { return TCPMinHeaderLen + h.Options.Len() }

// Put writes the header (checksum zero) into b and returns its length.
func (h *TCPHeader) Put(b []byte) int {
	t := TCP(b)
	t.SetSrcPort(h.SrcPort)
	t.SetDstPort(h.DstPort)
	t.SetSeq(h.Seq)
	t.SetAck(h.Ack)
	n := TCPMinHeaderLen + h.Options.Put(b[TCPMinHeaderLen:])
	t.SetDataOffset(n)
	t.SetFlags(h.Flags)
	t.SetWindow(h.Window)
	t.SetChecksum(0)
	t.SetUrgent(h.Urgent)
	return n
}
