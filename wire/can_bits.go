package wire

// Bit counts of frames on the wire, for the bus's bit-rate model: the
// bits from start-of-frame to the end of the intermission, with the stuff
// bits the sender inserts (after five equal bits, one of the opposite
// value, from SOF to the end of the CRC; in CAN FD the CRC field has
// fixed stuff bits instead).

// canBits collects a frame's bits MSB first and counts stuff bits.
type canBits struct {
	run   int // length of the current run of equal bits (stuffed stream)
	last  uint8
	stuff int // stuff bits inserted so far
	bits  int // bits added (without stuff)
	crc   uint16
}

func (c *canBits) add(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		b := uint8(v>>uint(i)) & 1
		c.bits++
		// CRC-15/CAN (polynomial 0x4599) over the unstuffed bits.
		nxt := (b ^ uint8(c.crc>>14)) & 1
		c.crc = (c.crc << 1) & 0x7FFF
		if nxt != 0 {
			c.crc ^= 0x4599
		}
		if c.bits > 1 && b == c.last {
			c.run++
		} else {
			c.run = 1
		}
		c.last = b
		if c.run == 5 {
			// The stuff bit is the complement and starts a new run.
			c.stuff++
			c.last ^= 1
			c.run = 1
		}
	}
}

// addNoCRC adds bits to the stuffed stream without touching the CRC.
func (c *canBits) addNoCRC(v uint32, n int) {
	crc := c.crc
	c.add(v, n)
	c.crc = crc
}

// CANFrameBits returns the bits f occupies on the bus: for a classic
// frame all at the nominal rate (nominal), for an FD frame with BRS the
// part sent at the data rate in data (for FD without BRS everything is
// nominal). It counts SOF to the end of the 3-bit intermission.
func CANFrameBits(f *CANFrame) (nominal, data int) {
	var c canBits
	dlc := uint32(f.DLC())
	n := int(f.Len)
	if f.IsRTR() && !f.IsFD() {
		n = 0
	}
	c.add(0, 1) // SOF
	if f.IsEFF() {
		id := f.ID & CANEffMask
		c.add(id>>18, 11)
		c.add(1, 1) // SRR
		c.add(1, 1) // IDE
		c.add(id&0x3FFFF, 18)
	} else {
		c.add(f.ID&CANSffMask, 11)
	}
	if !f.IsFD() {
		rtr := uint32(0)
		if f.IsRTR() {
			rtr = 1
		}
		c.add(rtr, 1)
		if f.IsEFF() {
			c.add(0, 2) // r1 r0
		} else {
			c.add(0, 2) // IDE r0
		}
		c.add(dlc, 4)
		for i := 0; i < n; i++ {
			c.add(uint32(f.Data[i]), 8)
		}
		c.addNoCRC(uint32(c.crc), 15)
		// CRC delimiter, ACK slot, ACK delimiter, EOF (7), intermission (3).
		return c.bits + c.stuff + 13, 0
	}
	// FD: RRS, (IDE for SFF), FDF, res, then BRS; the data phase starts
	// after BRS.
	if f.IsEFF() {
		c.add(0b010, 3) // RRS, FDF, res
	} else {
		c.add(0b0010, 4) // RRS, IDE, FDF, res
	}
	brs := uint32(0)
	if f.Flags&CANFDBRS != 0 {
		brs = 1
	}
	c.add(brs, 1)
	arb := c.bits + c.stuff
	esi := uint32(0)
	if f.Flags&CANFDESI != 0 {
		esi = 1
	}
	c.add(esi, 1)
	c.add(dlc, 4)
	for i := 0; i < n; i++ {
		c.add(uint32(f.Data[i]), 8)
	}
	dataBits := c.bits + c.stuff - arb
	// Stuff count (4) and CRC (17 up to 16 bytes, else 21), with a fixed
	// stuff bit before the stuff count and after every 4 bits.
	crcLen := 17
	if n > 16 {
		crcLen = 21
	}
	field := 4 + crcLen
	dataBits += field + (field+3)/4
	// CRC delimiter is the last bit at the data rate; then ACK etc. nominal.
	dataBits++
	nominal = arb + 2 + 7 + 3 // ACK slot, ACK delimiter, EOF, intermission
	if brs == 0 {
		return nominal + dataBits, 0
	}
	return nominal, dataBits
}
