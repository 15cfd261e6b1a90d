package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// Segment Routing Headers (RFC 8754) sent by sockstack to a Linux
// kernel doing SRv6: the lab's namespace has the kernel's fd00:77::1 (A)
// on the TAP and fd00:78::1 (B) on its loopback, seg6_enabled on (all
// and the TAP, in that namespace only). sockstack's UDP and TCP sockets
// with IPV6_RTHDR = an SRH [B (written by the stack), A], segments left
// 1, send to B: every packet goes to A (the first segment), the kernel
// processes the SRH there, takes B from segments[0], and delivers to its
// socket on B, whose checksum check covers B. tcpdump on the TAP shows
// the SRH on each packet sockstack sent.

var srv6B = netip.MustParseAddr("fd00:78::1")

// srv6Hdr is the IPV6_RTHDR value: segments [::, A], 1 left.
func srv6Hdr() []byte {
	h := make([]byte, 8+32)
	h[1], h[2], h[3], h[4] = 4, 4, 1, 1
	a := kernel6.As16()
	copy(h[24:], a[:])
	return h
}

// srv6Pkt is a captured packet from sockstack with an SRH.
type srv6Pkt struct {
	dst   netip.Addr // the fixed header's
	seg0  netip.Addr // the SRH's segments[0]
	left  int
	proto uint8 // what follows the SRH
}

// srv6Captured reads the pcap at path: sockstack's IPv6 packets (from
// stack6) with a routing header of type 4.
func srv6Captured(t *testing.T, path string) (out []srv6Pkt, plain int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, 0
	}
	for {
		d, _, err := r.ReadPacketData()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Logf("pcap: %v", err)
			}
			return out, plain
		}
		if len(d) < 14+40 || binary.BigEndian.Uint16(d[12:]) != 0x86dd {
			continue
		}
		ip := d[14:]
		if netip.AddrFrom16([16]byte(ip[8:24])) != stack6 {
			continue
		}
		nh := ip[6]
		if nh != 43 {
			if nh == 6 || nh == 17 {
				plain++
			}
			continue
		}
		if len(ip) < 40+24 || ip[42] != 4 {
			continue
		}
		out = append(out, srv6Pkt{dst: netip.AddrFrom16([16]byte(ip[24:40])), seg0: netip.AddrFrom16([16]byte(ip[48:64])), left: int(ip[43]), proto: ip[40]})
	}
}

func TestInteropSRv6(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3", "tcpdump", "ss")
	l.enable6(t)
	// B on the namespace's loopback; SRv6 on in this namespace only.
	l.run(t, 5*time.Second, nil, "ip", "-6", "addr", "add", srv6B.String()+"/128", "dev", "lo")
	for _, dev := range []string{"all", tapName} {
		l.run(t, 5*time.Second, nil, "sysctl", "-q", "-w", "net.ipv6.conf."+dev+".seg6_enabled=1")
	}
	h := l.startStack6(t, stack.Options{})
	// sockstack has no route to B: only to A, the first segment, which
	// every lookup (TCP's at connect too) is for, as on Linux.
	capt := l.capture(t, tapName, "ip6")

	// UDP: the kernel's socket on B reads what sockstack sent.
	const uport, tport, up = 7801, 7802, 200 << 10
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	uc := l.cmd(ctx, "python3", "-c", fmt.Sprintf(`import socket
s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); s.bind(('%s',%d))
b,a=s.recvfrom(2048); print(b.decode(), a[0], flush=True)
`, srv6B, uport))
	var uout syncBuffer
	uc.Stdout, uc.Stderr = &uout, &uout
	udone := startCmd(t, uc)
	l.waitListen(t, "udp", uport)
	u, err := h.net.Socket(socket.AF_INET6, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_RTHDR, srv6Hdr()); err != nil {
		t.Fatal(err)
	}
	// The first datagram may wait for A's link address; send until the
	// kernel has one (bounded by the reader's context).
	msg := []byte("hello-srv6")
	got := make(chan error, 1)
	go func() { got <- <-udone }()
	var uerr error
	for sent := 0; ; sent++ {
		if _, err := u.SendTo(msg, 0, socket.Inet6(srv6B.String(), uport)); err != nil {
			t.Fatalf("sendto: %v", err)
		}
		select {
		case uerr = <-got:
		case <-time.After(500 * time.Millisecond):
			if sent < 20 {
				continue
			}
			t.Fatalf("the kernel's socket on B read nothing: %q", uout.String())
		}
		break
	}
	if uerr != nil || strings.TrimSpace(uout.String()) != "hello-srv6 "+stack6.String() {
		t.Fatalf("kernel UDP reader: %v %q", uerr, uout.String())
	}

	// TCP: a transfer to the kernel's listener on B, hashed back.
	l.background(t, "python3", "-c", fmt.Sprintf(`import socket, hashlib
l=socket.socket(socket.AF_INET6); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
l.bind(('%s',%d)); l.listen(1)
c,_=l.accept(); h=hashlib.sha256(); n=0
while n < %d:
    b=c.recv(65536)
    if not b: break
    h.update(b); n+=len(b)
c.sendall(h.hexdigest().encode()); c.close()
`, srv6B, tport, up))
	l.waitListen(t, "tcp", tport)
	s, err := h.net.Socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetTimeout(20 * time.Second)
	if err := s.SetSockOpt(socket.IPPROTO_IPV6, socket.IPV6_RTHDR, srv6Hdr()); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(socket.Inet6(srv6B.String(), tport)); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, up)
	for i := range data {
		data[i] = byte(i*13 + i>>10)
	}
	if err := s.SendAll(data, 0); err != nil {
		t.Fatal(err)
	}
	reply := readTo(t, s)
	sum := sha256.Sum256(data)
	if !bytes.Equal(reply, []byte(hex.EncodeToString(sum[:]))) {
		t.Fatalf("the kernel read other bytes: %q", reply)
	}
	s.Close()

	// The capture: every UDP and TCP packet sockstack sent carries the
	// SRH, to A, B in segments[0], one segment left; none went without.
	var ps []srv6Pkt
	var plain, udp, tcp int
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, plain = srv6Captured(t, capt.path)
		udp, tcp = 0, 0
		for _, p := range ps {
			if p.dst != kernel6 || p.seg0 != srv6B || p.left != 1 {
				t.Fatalf("a packet to %v, segments[0] %v, %d left", p.dst, p.seg0, p.left)
			}
			switch p.proto {
			case 17:
				udp++
			case 6:
				tcp++
			}
		}
		if udp > 0 && tcp > up/1500 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // no event says that tcpdump wrote
	}
	if udp == 0 || tcp <= up/1500 || plain != 0 {
		t.Fatalf("captured from sockstack: %d UDP and %d TCP packets with the SRH, %d without", udp, tcp, plain)
	}
	t.Logf("captured from sockstack: %d UDP and %d TCP packets with the SRH", udp, tcp)
}
