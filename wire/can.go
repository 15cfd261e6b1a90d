package wire

import "encoding/binary"

// CAN frames as Linux's SocketCAN carries them (include/uapi/linux/can.h):
//
//	struct can_frame   { u32 can_id; u8 len; u8 pad; u8 res0; u8 len8_dlc; u8 data[8];  }  16 bytes
//	struct canfd_frame { u32 can_id; u8 len; u8 flags; u8 res0; u8 res1;    u8 data[64]; }  72 bytes
//
// can_id holds the identifier in its low 29 (EFF) or 11 (SFF) bits and the
// EFF/RTR/ERR flags in the top three. Sockets read and write the id in
// host byte order; the pcap link type 227 stores it in network order.

// CAN identifier flags and masks.
const (
	CANEffFlag  uint32 = 0x80000000 // 29-bit extended frame format
	CANRtrFlag  uint32 = 0x40000000 // remote transmission request
	CANErrFlag  uint32 = 0x20000000 // error message frame
	CANSffMask  uint32 = 0x000007FF
	CANEffMask  uint32 = 0x1FFFFFFF
	CANErrMask  uint32 = 0x1FFFFFFF
	CANFlagMask uint32 = CANEffFlag | CANRtrFlag | CANErrFlag
)

// Frame sizes (the MTUs of the two frame kinds) and payload limits.
const (
	CANMTU       = 16
	CANFDMTU     = 72
	CANMaxDLen   = 8
	CANFDMaxDLen = 64
)

// CAN FD flags (canfd_frame.flags).
const (
	CANFDBRS uint8 = 0x01 // bit rate switch: data phase at the data bit rate
	CANFDESI uint8 = 0x02 // error state indicator of the sender
	CANFDFDF uint8 = 0x04 // marks an FD frame (used in pcap and internally)
)

// Error frame classes (can_id bits of an error frame, linux/can/error.h)
// and the details in its data bytes.
const (
	CANErrTxTimeout uint32 = 0x001
	CANErrLostArb   uint32 = 0x002
	CANErrCrtl      uint32 = 0x004
	CANErrProt      uint32 = 0x008
	CANErrTrx       uint32 = 0x010
	CANErrAck       uint32 = 0x020
	CANErrBusOff    uint32 = 0x040
	CANErrBusError  uint32 = 0x080
	CANErrRestarted uint32 = 0x100
	CANErrCnt       uint32 = 0x200

	CANErrDLC = 8 // error frames always carry 8 data bytes

	// data[1]: controller state.
	CANErrCrtlRxWarning uint8 = 0x04
	CANErrCrtlTxWarning uint8 = 0x08
	CANErrCrtlRxPassive uint8 = 0x10
	CANErrCrtlTxPassive uint8 = 0x20
	CANErrCrtlActive    uint8 = 0x40
	// data[2]: protocol violation type.
	CANErrProtBit   uint8 = 0x01
	CANErrProtForm  uint8 = 0x02
	CANErrProtStuff uint8 = 0x04
	// data[3]: location.
	CANErrProtLocCRCSeq uint8 = 0x08
)

// canFDLens maps a DLC (0..15) to the CAN FD payload length.
var canFDLens = [16]uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64}

// CANFDDLCToLen is the payload length a 4-bit DLC stands for on CAN FD.
func CANFDDLCToLen(dlc uint8) int { return int(canFDLens[dlc&0xF]) }

// CANFDLenToDLC is the smallest DLC whose length holds n bytes (n is
// clamped to 64), as controllers round a payload up.
func CANFDLenToDLC(n int) uint8 {
	for dlc, l := range canFDLens {
		if int(l) >= n {
			return uint8(dlc)
		}
	}
	return 15
}

// CANFDValidLen reports whether n is one of the lengths an FD frame can
// carry: 0-8, 12, 16, 20, 24, 32, 48, 64.
func CANFDValidLen(n int) bool {
	return n >= 0 && n <= 64 && int(canFDLens[CANFDLenToDLC(n)]) == n
}

// CANFrame is a classic or FD frame. FD frames have CANFDFDF in Flags.
// It is a plain value: copying it copies the payload, and nothing in it
// points elsewhere, so queues of frames allocate nothing per frame.
type CANFrame struct {
	ID    uint32 // identifier with EFF/RTR/ERR flags
	Len   uint8  // payload length
	Flags uint8  // CANFDBRS/ESI/FDF
	Len8  uint8  // classic only: a DLC of 9..15 as sent (len8_dlc), else 0
	Data  [CANFDMaxDLen]byte
}

// IsFD reports whether f is a CAN FD frame.
func (f *CANFrame) IsFD() bool { return f.Flags&CANFDFDF != 0 }

// IsEFF, IsRTR and IsErr read the id flags.
func (f *CANFrame) IsEFF() bool { return f.ID&CANEffFlag != 0 }
func (f *CANFrame) IsRTR() bool { return f.ID&CANRtrFlag != 0 }
func (f *CANFrame) IsErr() bool { return f.ID&CANErrFlag != 0 }

// Ident is the bare identifier (11 or 29 bits).
func (f *CANFrame) Ident() uint32 {
	if f.IsEFF() {
		return f.ID & CANEffMask
	}
	return f.ID & CANSffMask
}

// Payload is the data the frame carries.
func (f *CANFrame) Payload() []byte { return f.Data[:f.Len] }

// MTU is the size of the frame's struct: 16 or 72.
func (f *CANFrame) MTU() int {
	if f.IsFD() {
		return CANFDMTU
	}
	return CANMTU
}

// DLC is the 4-bit length code sent on the bus.
func (f *CANFrame) DLC() uint8 {
	if f.IsFD() {
		return CANFDLenToDLC(int(f.Len))
	}
	if f.Len == CANMaxDLen && f.Len8 > 8 && f.Len8 <= 15 {
		return f.Len8
	}
	return f.Len
}

var (
	errCANTruncated = &ParseError{Layer: "can", Reason: ReasonTruncated}
	errCANSize      = &ParseError{Layer: "can", Reason: ReasonBadLength, Detail: "not 16 (CAN) or 72 (CAN FD) bytes"}
	errCANLen       = &ParseError{Layer: "can", Reason: ReasonBadLength, Detail: "payload length beyond the frame kind's maximum"}
)

// ParseCANFrame reads a struct can_frame (16 bytes) or canfd_frame (72
// bytes) in host byte order, as a CAN_RAW socket is given them. Other
// sizes and payload lengths over 8 (classic) or 64 (FD) are errors.
func ParseCANFrame(b []byte, f *CANFrame) error {
	switch len(b) {
	case CANMTU:
		f.ID = binary.NativeEndian.Uint32(b[0:])
		f.Len = b[4]
		if f.Len > CANMaxDLen {
			return errCANLen
		}
		f.Flags = 0
		f.Len8 = 0
		if f.Len == CANMaxDLen && b[7] > 8 && b[7] <= 15 {
			f.Len8 = b[7]
		}
		copy(f.Data[:8], b[8:16])
		clear(f.Data[8:])
	case CANFDMTU:
		f.ID = binary.NativeEndian.Uint32(b[0:])
		f.Len = b[4]
		if f.Len > CANFDMaxDLen {
			return errCANLen
		}
		// Only BRS and ESI are the sender's to set; FDF marks the kind.
		f.Flags = b[5]&(CANFDBRS|CANFDESI) | CANFDFDF
		f.Len8 = 0
		copy(f.Data[:], b[8:72])
	default:
		if len(b) < CANMTU {
			return errCANTruncated
		}
		return errCANSize
	}
	// Bytes past the length are not part of the frame.
	clear(f.Data[f.Len:])
	return nil
}

// PutCANFrame writes f in the socket layout into b (16 or 72 bytes, by
// kind) and returns the size; b must hold f.MTU() bytes.
func PutCANFrame(b []byte, f *CANFrame) int {
	n := f.MTU()
	b = b[:n]
	binary.NativeEndian.PutUint32(b[0:], f.ID)
	b[4] = f.Len
	if f.IsFD() {
		b[5] = f.Flags &^ CANFDFDF
		b[6], b[7] = 0, 0
		copy(b[8:], f.Data[:])
	} else {
		b[5], b[6] = 0, 0
		b[7] = f.Len8
		copy(b[8:], f.Data[:8])
	}
	return n
}

// PutSocketCANPcap writes f as a LINKTYPE_CAN_SOCKETCAN (227) record
// body: the id in network byte order, then length, FD flags (FDF set for
// FD frames, so readers need not guess from the size), two reserved
// bytes, and the data (8 or 64 bytes). It returns 16 or 72.
func PutSocketCANPcap(b []byte, f *CANFrame) int {
	n := f.MTU()
	b = b[:n]
	binary.BigEndian.PutUint32(b[0:], f.ID)
	b[4] = f.Len
	b[5] = 0
	if f.IsFD() {
		b[5] = f.Flags | CANFDFDF
	}
	b[6] = 0
	b[7] = 0
	if !f.IsFD() {
		b[7] = f.Len8
	}
	copy(b[8:], f.Data[:n-8])
	return n
}

// ParseSocketCANPcap reads a LINKTYPE_CAN_SOCKETCAN record body.
func ParseSocketCANPcap(b []byte, f *CANFrame) error {
	if len(b) < 8 {
		return errCANTruncated
	}
	f.ID = binary.BigEndian.Uint32(b[0:])
	f.Len = b[4]
	fd := b[5]&CANFDFDF != 0 || len(b) == CANFDMTU
	max := CANMaxDLen
	f.Flags, f.Len8 = 0, 0
	if fd {
		max = CANFDMaxDLen
		f.Flags = b[5]&(CANFDBRS|CANFDESI) | CANFDFDF
	}
	if int(f.Len) > max {
		return errCANLen
	}
	if len(b)-8 < int(f.Len) {
		return errCANTruncated
	}
	clear(f.Data[:])
	copy(f.Data[:f.Len], b[8:])
	return nil
}

// CAN-over-Ethernet (UDP) packets, the format Wireshark decodes as
// "caneth": the magic "ISO11898", version 1, a frame count (at most 16),
// then 15 bytes per classic frame: id (little-endian, 29 bits), DLC, 8
// data bytes, an extended flag byte and an RTR flag byte.
const (
	CANEthMagic     = "ISO11898"
	CANEthHeaderLen = 10
	CANEthFrameLen  = 15
	CANEthMaxFrames = 16
	CANEthPort      = 11898 // the UDP port Wireshark's caneth dissector claims
)

var (
	errCANEthMagic = &ParseError{Layer: "caneth", Reason: ReasonBadField, Detail: "bad magic or version"}
	errCANEthCount = &ParseError{Layer: "caneth", Reason: ReasonBadLength, Detail: "frame count disagrees with the packet"}
	errCANEthFrame = &ParseError{Layer: "caneth", Reason: ReasonBadField, Detail: "bad frame"}
)

// PutCANEthHeader writes the header for n frames into b[:10].
func PutCANEthHeader(b []byte, n int) {
	copy(b[0:8], CANEthMagic)
	b[8] = 1
	b[9] = uint8(n)
}

// PutCANEthFrame writes classic frame f into b[:15].
func PutCANEthFrame(b []byte, f *CANFrame) {
	binary.LittleEndian.PutUint32(b[0:], f.Ident())
	b[4] = f.Len
	copy(b[5:13], f.Data[:8])
	b[13], b[14] = 0, 0
	if f.IsEFF() {
		b[13] = 1
	}
	if f.IsRTR() {
		b[14] = 1
	}
}

// CANEthFrames checks a caneth packet and returns its frame count.
func CANEthFrames(b []byte) (int, error) {
	if len(b) < CANEthHeaderLen {
		return 0, errCANTruncated
	}
	if string(b[0:8]) != CANEthMagic || b[8] != 1 {
		return 0, errCANEthMagic
	}
	n := int(b[9])
	if n > CANEthMaxFrames || len(b) < CANEthHeaderLen+n*CANEthFrameLen {
		return 0, errCANEthCount
	}
	return n, nil
}

// ParseCANEthFrame reads frame i of a packet CANEthFrames accepted.
func ParseCANEthFrame(b []byte, i int, f *CANFrame) error {
	p := b[CANEthHeaderLen+i*CANEthFrameLen:][:CANEthFrameLen]
	id := binary.LittleEndian.Uint32(p[0:])
	ext, rtr := p[13], p[14]
	if p[4] > CANMaxDLen || ext > 1 || rtr > 1 {
		return errCANEthFrame
	}
	if ext == 1 {
		if id > CANEffMask {
			return errCANEthFrame
		}
		id |= CANEffFlag
	} else if id > CANSffMask {
		return errCANEthFrame
	}
	if rtr == 1 {
		id |= CANRtrFlag
	}
	*f = CANFrame{ID: id, Len: p[4]}
	copy(f.Data[:f.Len], p[5:13])
	return nil
}

// CANArbKey orders frames as bus arbitration does: the bits of the
// arbitration field in sending order, dominant (0) winning. So a lower
// key wins: a lower base id first, then a data frame over a remote
// frame of the same standard id, then a standard frame over an extended
// one with the same base id (IDE is recessive).
func CANArbKey(f *CANFrame) uint32 {
	rtr := uint32(0)
	if f.IsRTR() {
		rtr = 1
	}
	if f.IsEFF() {
		id := f.ID & CANEffMask
		base, ext := id>>18, id&0x3FFFF
		// base(11) SRR=1 IDE=1 ext(18) RTR
		return base<<21 | 1<<20 | 1<<19 | ext<<1 | rtr
	}
	// base(11) RTR IDE=0 (nothing after decides)
	return (f.ID&CANSffMask)<<21 | rtr<<20
}
