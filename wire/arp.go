package wire

import (
	"encoding/binary"
	"net/netip"
)

// ARP operations.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// ARPLen is the length of an Ethernet/IPv4 ARP packet.
const ARPLen = 28

// ARP is a view of an Ethernet/IPv4 ARP packet (RFC 826).
type ARP []byte

func (a ARP) HType() uint16        { return binary.BigEndian.Uint16(a[0:2]) }
func (a ARP) PType() uint16        { return binary.BigEndian.Uint16(a[2:4]) }
func (a ARP) HLen() uint8          { return a[4] }
func (a ARP) PLen() uint8          { return a[5] }
func (a ARP) Op() uint16           { return binary.BigEndian.Uint16(a[6:8]) }
func (a ARP) SenderMAC() MAC       { return MAC(a[8:14]) }
func (a ARP) SenderIP() netip.Addr { return netip.AddrFrom4([4]byte(a[14:18])) }
func (a ARP) TargetMAC() MAC       { return MAC(a[18:24]) }
func (a ARP) TargetIP() netip.Addr { return netip.AddrFrom4([4]byte(a[24:28])) }

// ARPInfo is the content of an Ethernet/IPv4 ARP packet.
type ARPInfo struct {
	Op        uint16
	SenderMAC MAC
	SenderIP  netip.Addr
	TargetMAC MAC
	TargetIP  netip.Addr
}

// ParseARP checks that b is an Ethernet/IPv4 ARP packet and reads it.
func ParseARP(b []byte) (ARPInfo, error) {
	if len(b) < ARPLen {
		return ARPInfo{}, errARPTruncated
	}
	a := ARP(b)
	if a.HType() != 1 || a.PType() != EtherTypeIPv4 || a.HLen() != 6 || a.PLen() != 4 {
		return ARPInfo{}, errARPFormat
	}
	return ARPInfo{Op: a.Op(), SenderMAC: a.SenderMAC(), SenderIP: a.SenderIP(),
		TargetMAC: a.TargetMAC(), TargetIP: a.TargetIP()}, nil
}

// Put writes the packet into b[:28].
func (i *ARPInfo) Put(b []byte) {
	binary.BigEndian.PutUint16(b[0:2], 1)
	binary.BigEndian.PutUint16(b[2:4], EtherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:8], i.Op)
	copy(b[8:14], i.SenderMAC[:])
	s := i.SenderIP.As4()
	copy(b[14:18], s[:])
	copy(b[18:24], i.TargetMAC[:])
	t := i.TargetIP.As4()
	copy(b[24:28], t[:])
}
