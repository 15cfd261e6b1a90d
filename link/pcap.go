package link

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstack/sockstack/clock"
)

// libpcap link types (https://www.tcpdump.org/linktypes.html).
const (
	LinkTypeEthernet uint32 = 1
	LinkTypeRaw      uint32 = 101 // bare IPv4/IPv6 packets
)

// DefaultSnaplen is the capture length tcpdump uses by default.
const DefaultSnaplen = 262144

const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
)

// PcapOptions tune a capture. The zero value means: real clock,
// microsecond timestamps, DefaultSnaplen, buffered output.
type PcapOptions struct {
	Clock      clock.Clock // timestamps for Pcap (PcapWriter takes them as arguments)
	Nanosecond bool        // nanosecond timestamps (magic a1b23c4d)
	Snaplen    int         // longest stored frame; longer ones are cut
	Unbuffered bool        // write each record at once, for a reader that follows the file
}

// PcapWriter writes frames to a libpcap file. It is safe for concurrent
// use; records are written whole, in call order.
type PcapWriter struct {
	mu      sync.Mutex
	bw      *bufio.Writer
	nano    bool
	snaplen int
	unbuf   bool
	hdr     [16]byte

	Frames      atomic.Uint64 // records written
	WriteErrors atomic.Uint64 // records lost to errors of the underlying writer
}

// NewPcapWriter writes the file header for linkType and returns the writer.
func NewPcapWriter(w io.Writer, linkType uint32, opts PcapOptions) (*PcapWriter, error) {
	p := &PcapWriter{bw: bufio.NewWriterSize(w, 64<<10), nano: opts.Nanosecond,
		snaplen: opts.Snaplen, unbuf: opts.Unbuffered}
	if p.snaplen <= 0 {
		p.snaplen = DefaultSnaplen
	}
	var h [24]byte
	magic := uint32(pcapMagicMicro)
	if p.nano {
		magic = pcapMagicNano
	}
	// Little-endian, like the files tcpdump writes on x86; readers check the magic.
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint16(h[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	// h[8:16]: thiszone and sigfigs, both 0.
	binary.LittleEndian.PutUint32(h[16:], uint32(p.snaplen))
	binary.LittleEndian.PutUint32(h[20:], linkType)
	if _, err := p.bw.Write(h[:]); err != nil {
		return nil, err
	}
	if err := p.bw.Flush(); err != nil {
		return nil, err
	}
	return p, nil
}

// WriteFrame appends one record stamped ts; frames longer than the
// snaplen are stored cut, with their original length.
func (p *PcapWriter) WriteFrame(ts time.Time, frame []byte) error {
	incl := min(len(frame), p.snaplen)
	sec := ts.Unix()
	frac := int64(ts.Nanosecond())
	if !p.nano {
		frac /= 1000
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	binary.LittleEndian.PutUint32(p.hdr[0:], uint32(sec))
	binary.LittleEndian.PutUint32(p.hdr[4:], uint32(frac))
	binary.LittleEndian.PutUint32(p.hdr[8:], uint32(incl))
	binary.LittleEndian.PutUint32(p.hdr[12:], uint32(len(frame)))
	_, err := p.bw.Write(p.hdr[:])
	if err == nil {
		_, err = p.bw.Write(frame[:incl])
	}
	if err == nil && p.unbuf {
		err = p.bw.Flush()
	}
	if err != nil {
		p.WriteErrors.Add(1)
		return err
	}
	p.Frames.Add(1)
	return nil
}

// Flush writes buffered records out.
func (p *PcapWriter) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bw.Flush()
}

// Pcap is middleware that records every frame sent and received through
// an endpoint into a libpcap file (LINKTYPE_ETHERNET, or LINKTYPE_RAW for
// KindIP endpoints). Sent frames are recorded when WriteFrames is called.
type Pcap struct {
	*Sniffer
	w   *PcapWriter
	clk clock.Clock
}

// NewPcap wraps inner and writes the file header to w at once. Only the
// first opts value is used. Close flushes but does not close w.
func NewPcap(inner Endpoint, w io.Writer, opts ...PcapOptions) (*Pcap, error) {
	var o PcapOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	lt := LinkTypeEthernet
	if inner.Kind() == KindIP {
		lt = LinkTypeRaw
	}
	pw, err := NewPcapWriter(w, lt, o)
	if err != nil {
		return nil, err
	}
	p := &Pcap{w: pw, clk: o.Clock}
	// Write errors are counted in the writer; traffic goes on regardless.
	p.Sniffer = NewSniffer(inner, func(_ Direction, f []byte) { _ = pw.WriteFrame(p.clk.Now(), f) })
	return p, nil
}

// Writer is the underlying PcapWriter (its counters, Flush).
func (p *Pcap) Writer() *PcapWriter { return p.w }

// Flush writes buffered records out.
func (p *Pcap) Flush() error { return p.w.Flush() }

// Close closes the inner endpoint, then flushes the file.
func (p *Pcap) Close() error {
	return errors.Join(p.Sniffer.Close(), p.w.Flush())
}
