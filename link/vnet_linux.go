package link

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sockstack/sockstack/wire"
)

// virtio-net headers (struct virtio_net_hdr, 10 bytes, native byte order
// on a TAP): with IFF_VNET_HDR every frame read from or written to the
// device starts with one, so the kernel and the endpoint exchange TCP
// super-segments (GSO) and partial checksums instead of cutting and
// summing every segment.

const vnetHdrLen = 10

const (
	vnetFlagNeedsCsum = 1
	vnetFlagDataValid = 2
	vnetGSOECN        = 0x80
)

// TUNSETOFFLOAD flags (linux/if_tun.h).
const (
	tunFCsum  = 0x01
	tunFTSO4  = 0x02
	tunFTSO6  = 0x04
	tunFTSOEC = 0x08
	tunFUSO4  = 0x20
	tunFUSO6  = 0x40
)

// putVnetHdr encodes m as a virtio-net header.
func putVnetHdr(b []byte, m Meta) {
	clear(b[:vnetHdrLen])
	if m.CsumPartial {
		b[0] = vnetFlagNeedsCsum
		binary.NativeEndian.PutUint16(b[6:], m.CsumStart)
		binary.NativeEndian.PutUint16(b[8:], m.CsumOffset)
	}
	if m.GSOSize > 0 {
		b[1] = m.GSOType
		binary.NativeEndian.PutUint16(b[2:], m.HdrLen)
		binary.NativeEndian.PutUint16(b[4:], m.GSOSize)
	}
}

// parseVnetHdr decodes a header read from the kernel; netOff is where
// the IP header starts in the frame after it.
func parseVnetHdr(b []byte, netOff int) (Meta, bool) {
	if len(b) < vnetHdrLen {
		return Meta{}, false
	}
	var m Meta
	flags := b[0]
	m.GSOType = b[1] &^ vnetGSOECN
	m.HdrLen = binary.NativeEndian.Uint16(b[2:])
	m.GSOSize = binary.NativeEndian.Uint16(b[4:])
	if flags&vnetFlagNeedsCsum != 0 {
		m.CsumPartial = true
		m.CsumStart = binary.NativeEndian.Uint16(b[6:])
		m.CsumOffset = binary.NativeEndian.Uint16(b[8:])
	}
	m.CsumValid = flags&vnetFlagDataValid != 0
	if m.GSOType == GSONone {
		m.GSOSize, m.HdrLen = 0, 0
	} else if m.GSOSize == 0 {
		return Meta{}, false
	}
	if m != (Meta{}) {
		m.NetOff = uint8(netOff)
	}
	return m, true
}

// vnetState is the virtio-net part of an fdEndpoint.
type vnetState struct {
	on    bool
	metas []Meta
	seg   segmenter
	whdr  [vnetHdrLen]byte
	iov   [4]unix.Iovec // header, frame, and a gathered tail's two parts
	wmeta []Meta        // metas of the frames being written (nil: none)
}

// setOffload asks the kernel for checksum and segmentation offload on a
// TUN/TAP fd opened with IFF_VNET_HDR: with USO where the kernel has it,
// else without.
func setOffload(fd int) (uint, error) {
	for _, f := range []uint{tunFCsum | tunFTSO4 | tunFTSO6 | tunFTSOEC | tunFUSO4 | tunFUSO6, tunFCsum | tunFTSO4 | tunFTSO6 | tunFTSOEC} {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, int(f)); err == nil {
			return f, nil
		} else if err != unix.EINVAL {
			return 0, err
		}
	}
	return 0, unix.EINVAL
}

func (e *fdEndpoint) netOff() int {
	if e.kind == KindEthernet {
		return wire.EthernetHeaderLen
	}
	return 0
}

// writeVnet is the write callback of a TAP with virtio-net headers: one
// writev(2) of header and frame per frame.
func (e *fdEndpoint) writeVnet(fd uintptr) bool {
	v := &e.vnet
	for e.wnext < len(e.wframes) {
		f := e.wframes[e.wnext]
		var m Meta
		if v.wmeta != nil {
			m = v.wmeta[e.wnext]
		}
		putVnetHdr(v.whdr[:], m)
		v.iov[0].Base, v.iov[0].Len = &v.whdr[0], vnetHdrLen
		v.iov[1].Base = &f[0]
		v.iov[1].SetLen(len(f))
		niov := 2
		if e.wnext == 0 {
			for _, t := range e.wtail {
				if len(t) > 0 {
					v.iov[niov].Base = &t[0]
					v.iov[niov].SetLen(len(t))
					niov++
				}
			}
		}
		_, errno := nbSyscall6(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&v.iov[0])), uintptr(niov), 0, 0, 0)
		e.wcalls.Add(1)
		clear(v.iov[2:]) // keep no pointer to the sender's payload
		if e.wrote(errOf(errno), len(f)+e.tailLen(e.wnext)) {
			return false
		}
	}
	return true
}

// Offloads: a TAP/TUN opened with Offload takes TCP super-segments up to
// 64 KB and partial checksums; otherwise nothing beyond the MTU.
func (t *TAP) Offloads() Offloads {
	if !t.vnet.on {
		return Offloads{}
	}
	// USO only when TUNSETOFFLOAD took it (kernels before 6.2 lack it).
	return Offloads{GSOMax: InMemoryGSOMax, NeedsMeta: true, PartialCsum: true, UDPGSO: t.offFlags&tunFUSO4 != 0}
}

// WriteFrameVec writes one frame gathered from head and tail (VecWriter);
// it needs virtio-net headers.
func (t *TAP) WriteFrameVec(head []byte, tail [2][]byte, m Meta) (bool, error) {
	if !t.vnet.on {
		return false, nil
	}
	return true, t.writeVec(head, tail, m)
}

// WriteFramesMeta writes frames with their offload state (the kernel
// cuts super-segments and finishes checksums). Without virtio-net
// headers it finishes them in software.
func (t *TAP) WriteFramesMeta(frames [][]byte, meta []Meta) (int, error) {
	if !t.vnet.on {
		n := 0
		for i, f := range frames {
			var werr error
			err := t.vnet.seg.finish(f, meta[i], func(b []byte) error {
				_, werr = t.WriteFrames([][]byte{b})
				return werr
			})
			if werr != nil {
				return n, werr
			}
			if err != nil {
				t.stats.TxDropped.Add(1)
			}
			n++
		}
		return n, nil
	}
	if t.closed.Load() {
		return 0, ErrClosed
	}
	if t.queues != nil {
		return t.writeQueues(frames, meta) // multi-queue (fdep_linux.go)
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.vnet.wmeta = meta
	defer func() { t.vnet.wmeta = nil }()
	return t.writeLocked(frames)
}
