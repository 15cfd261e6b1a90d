package interop

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// pyICMPExt sends, from a raw ICMP socket of the namespace it runs in,
// an ICMP time exceeded to argv[1] quoting a 128-byte UDP datagram from
// argv[1]:argv[2] to argv[3]:argv[4] (RFC 4884 length 32 words), with
// an extension structure holding one MPLS label stack object (RFC 4950:
// label 299824, TC 0, S, TTL 1); argv[5] "bad" spoils its checksum. It
// prints the extension's bytes in hex.
const pyICMPExt = `
import socket, struct, sys
dst, sport, src, dport, how = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
udp = struct.pack("!HHHH", sport, dport, 108, 0) + bytes(range(100))
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 128, 0, 0, 1, 17, 0, socket.inet_aton(dst), socket.inet_aton(src))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
obj = struct.pack("!HBB", 8, 1, 1) + struct.pack("!I", (299824 << 12) | (1 << 8) | 1)
ext = struct.pack("!BBH", 0x20, 0, 0) + obj
ext = ext[:2] + struct.pack("!H", csum(ext)) + ext[4:]
if how == "bad":
    ext = ext[:3] + bytes([ext[3] ^ 0xff]) + ext[4:]
icmp = struct.pack("!BBHBBH", 11, 0, 0, 0, 32, 0) + ip + udp + ext
icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(icmp, (dst, 0))
print(ext.hex())
`

// TestInteropRecvErrRFC4884: a multi-part time exceeded crafted outside
// the stack (Python's raw socket in the lab's namespace, so the kernel
// routes it over the TAP) reaches a sockstack UDP socket with
// IP_RECVERR_RFC4884: ee_rfc4884.len points at the extension in the
// payload (128 bytes of original datagram less the 28 the socket strips),
// the extension arrives whole, IP_PKTINFO names the TAP and our address;
// a spoilt checksum is flagged INVALID and counted.
func TestInteropRecvErrRFC4884(t *testing.T) {
	l := newLab(t)
	needTools(t, scapyPython)
	h := l.startStack("")
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, o := range []int{socket.IP_RECVERR, socket.IP_RECVERR_RFC4884, socket.IP_PKTINFO} {
		if err := s.SetSockOpt(socket.SOL_IP, o, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Bind(socket.InetAddr(netip.AddrPortFrom(stackIP, 0))); err != nil {
		t.Fatal(err)
	}
	sa, _ := s.GetSockName()
	sport := int(sa.(*socket.SockaddrInet).AddrPort.Port())
	if err := s.SetSockOpt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"good", "bad"} {
		before := h.st.Stats().ICMP.RFC4884Invalid.Load()
		out := l.run(t, 20*time.Second, nil, scapyPython, "-c", pyICMPExt, stackIP.String(), strconv.Itoa(sport), kernelIP.String(), "33434", how)
		ext, err := hex.DecodeString(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("%s: %q: %v", how, out, err)
		}
		// The error becomes the pending error: the receive returns it.
		if _, err := s.Recv(make([]byte, 16), 0); !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Fatalf("%s: recv %v, want the time exceeded's EHOSTUNREACH", how, err)
		}
		buf := make([]byte, 512)
		n, _, _, ee, err := s.RecvErr(buf, 0)
		if err != nil {
			t.Fatalf("%s: %v", how, err)
		}
		wantFlags := uint8(0)
		if how == "bad" {
			wantFlags = socket.SO_EE_RFC4884_FLAG_INVALID
		}
		if ee.Type != 11 || ee.RFC4884Len != 100 || ee.RFC4884Flags != wantFlags || ee.Offender == nil || ee.Offender.AddrPort.Addr() != kernelIP {
			t.Fatalf("%s: %+v", how, ee)
		}
		if !bytes.Equal(buf[100:n], ext) {
			t.Fatalf("%s: payload after ee_rfc4884.len %x, want the extension %x", how, buf[100:n], ext)
		}
		pi := make([]byte, 12)
		binary.NativeEndian.PutUint32(pi, uint32(h.nic.ID()))
		copy(pi[8:], stackIP.AsSlice())
		if len(ee.Ancillary) != 32 || !bytes.Equal(ee.Ancillary[16:28], pi) {
			t.Fatalf("%s: IP_PKTINFO %x, want %x", how, ee.Ancillary, pi)
		}
		if d := h.st.Stats().ICMP.RFC4884Invalid.Load() - before; d != uint64(wantFlags) {
			t.Fatalf("%s: RFC4884Invalid counted %d", how, d)
		}
	}
}
