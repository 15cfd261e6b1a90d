package interop

import (
	"encoding/hex"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// The host hardening of issue 8 seen from the wire, with the kernel's
// own packet builders and parsers on the other side.

const pyHardenRR = `
import socket, struct
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(5)
s.setsockopt(socket.IPPROTO_IP, 4, bytes([7, 39, 4]) + bytes(37))  # IP_OPTIONS: Record Route, 9 slots
m = struct.pack('!BBHHH', 8, 0, 0, 0x4242, 1) + b'record route'
m = m[:2] + struct.pack('!H', csum(m)) + m[4:]
s.sendto(m, ('10.77.0.2', 0))
while True:
    p, _ = s.recvfrom(65535)
    hl = (p[0] & 15) * 4
    if p[hl] == 0 and struct.unpack('!H', p[hl+4:hl+6])[0] == 0x4242:
        break
o, i = p[20:hl], 0
while i < len(o) and o[i] != 0:
    if o[i] == 1:
        i += 1
        continue
    if o[i] == 7:
        n = (o[i+2] - 4) // 4
        print('RR', ' '.join(socket.inet_ntoa(o[i+3+4*k:i+7+4*k]) for k in range(n)))
    i += o[i+1]
`

// pyHardenFrames sends crafted frames from the kernel side of the TAP
// (AF_PACKET, so the kernel's routing does not stop them): argv[1] is
// sockstack's MAC, argv[2] a list of kind:src:dst:port, each a UDP
// datagram or a TCP SYN.
const pyHardenFrames = `
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
dmac = bytes.fromhex(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('tap0', 0))
smac = s.getsockname()[4]
for spec in sys.argv[2].split(','):
    kind, src, dst, port = spec.split(':')
    sa, da, port = socket.inet_aton(src), socket.inet_aton(dst), int(port)
    if kind == 'udp':
        proto, l4 = 17, struct.pack('!HHHH', 5555, port, 8 + len(kind), 0) + kind.encode()
    else:
        proto = 6
        l4 = struct.pack('!HHIIBBHHH', 5555, port, 1000, 0, 5 << 4, 2, 65535, 0, 0)
        l4 = l4[:16] + struct.pack('!H', csum(sa + da + struct.pack('!BBH', 0, 6, len(l4)) + l4)) + l4[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, sa, da)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    s.send(dmac + smac + b'\x08\x00' + ip + l4)
`

const pyHardenClosedPorts = `
import socket
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for p in range(40000, 40200):
    u.sendto(b'x', ('10.77.0.2', p))
u.sendto(b'done', ('10.77.0.2', 9998))
r.settimeout(1)
n = 0
try:
    while True:
        p, _ = r.recvfrom(2048)
        hl = (p[0] & 15) * 4
        if p[hl] == 3 and p[hl+1] == 3:
            n += 1
except socket.timeout:
    pass
print('unreachables', n)
`

// udpSock binds a sockstack UDP socket with a receive timeout.
func udpSock(t *testing.T, h *host, addr string, port int) *socket.Socket {
	t.Helper()
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Bind(socket.Inet(addr, port)); err != nil {
		t.Fatal(err)
	}
	s.SetTimeout(10 * time.Second)
	return s
}

func TestInteropHostHardening(t *testing.T) {
	l := newLab(t)
	needTools(t, "python3")
	h := l.startStack("")

	t.Run("kernel_raw_ping_with_record_route_is_reflected", func(t *testing.T) {
		out := l.run(t, 15*time.Second, nil, "python3", "-c", pyHardenRR)
		// The kernel records itself on output, sockstack on arrival and on
		// departure (as Linux's ip_options_echo), the kernel on input.
		wantContains(t, "record route", out, "RR 10.77.0.1 10.77.0.2 10.77.0.2")
		t.Logf("kernel: %s", strings.TrimSpace(out))
	})

	t.Run("martians_from_the_wire_do_not_reach_loopback", func(t *testing.T) {
		lo := udpSock(t, h, "127.0.0.1", 9999)
		ctl := udpSock(t, h, stackIP.String(), 9998)
		ln, err := h.net.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		if err := ln.Bind(socket.Inet("127.0.0.1", 9997)); err != nil {
			t.Fatal(err)
		}
		if err := ln.Listen(8); err != nil {
			t.Fatal(err)
		}
		st := &h.st.Stats().IP
		dst0, src0, synAck0 := st.InMartianDstLoopback.Load(), st.InMartianSrcLoopback.Load(), h.st.TCP.Stats().OutSegs
		mac := h.nic.HardwareAddr()
		frames := "udp:10.77.0.1:127.0.0.1:9999,tcp:10.77.0.1:127.0.0.1:9997,udp:127.0.0.1:10.77.0.2:9998,udp:10.77.0.1:10.77.0.2:9998"
		l.run(t, 10*time.Second, nil, "python3", "-c", pyHardenFrames, hex.EncodeToString(mac[:]), frames)
		// The control datagram was sent last; frames are handled in order.
		buf := make([]byte, 64)
		n, _, err := ctl.RecvFrom(buf, 0)
		if err != nil || string(buf[:n]) != "udp" {
			t.Fatalf("control datagram: %q, %v", buf[:n], err)
		}
		if _, _, err := lo.RecvFrom(buf, socket.MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("the socket on 127.0.0.1 received from the wire: %v", err)
		}
		if _, _, err := ctl.RecvFrom(buf, socket.MSG_DONTWAIT); !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("the datagram from 127.0.0.1 was delivered: %v", err)
		}
		if got := st.InMartianDstLoopback.Load() - dst0; got != 2 {
			t.Errorf("martian destinations counted: %d, want 2 (UDP and SYN)", got)
		}
		if got := st.InMartianSrcLoopback.Load() - src0; got != 1 {
			t.Errorf("martian sources counted: %d, want 1", got)
		}
		if h.st.TCP.Stats().OutSegs != synAck0 {
			t.Errorf("TCP sent %d segments: the listener on 127.0.0.1 answered", h.st.TCP.Stats().OutSegs-synAck0)
		}
	})

	t.Run("200_datagrams_to_closed_ports_draw_6_unreachables", func(t *testing.T) {
		ctl := udpSock(t, h, stackIP.String(), 9998)
		ic := &h.st.Stats().ICMP
		sent0, limited0 := ic.OutDestUnreachs.Load(), ic.OutRateLimitedPeer.Load()
		out := l.run(t, 15*time.Second, nil, "python3", "-c", pyHardenClosedPorts)
		buf := make([]byte, 64)
		if n, _, err := ctl.RecvFrom(buf, 0); err != nil || string(buf[:n]) != "done" {
			t.Fatalf("control datagram: %q, %v", buf[:n], err)
		}
		if sent := ic.OutDestUnreachs.Load() - sent0; sent != 6 {
			t.Errorf("sockstack sent %d port unreachables for 200 datagrams, want 6", sent)
		}
		if lim := ic.OutRateLimitedPeer.Load() - limited0; lim != 194 {
			t.Errorf("rate-limited %d, want 194", lim)
		}
		if !strings.Contains(out, "unreachables ") || strings.Contains(out, "unreachables 0\n") {
			t.Errorf("the kernel saw no port unreachable: %s", out)
		}
		t.Logf("kernel: %s", strings.TrimSpace(out))
	})
}
