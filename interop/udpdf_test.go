package interop

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/socket"
)

// TestInteropUDPDontFragmentLikeLinux: under the default
// IP_MTU_DISCOVER (WANT) sockstack and the kernel send the same UDP
// datagrams over the TAP (100, 1472 and 1473 bytes of payload on a
// 1500-byte MTU) and tcpdump on the TAP sees the same IP flags from
// both: DF on the two that fit, the third fragmented without DF.
func TestInteropUDPDontFragmentLikeLinux(t *testing.T) {
	l := newLab(t)
	needTools(t, "tcpdump", "python3")
	h := l.startStack("")
	sizes := []int{100, 1472, 1473}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf syncBuffer
	// Each side sends 2 unfragmented datagrams and 2 fragments.
	c := l.cmd(ctx, "tcpdump", "-n", "-v", "-l", "-i", tapName, "-c", "8", "udp or (ip[6:2] & 0x1fff != 0)")
	c.Stdout, c.Stderr = &buf, &buf
	done := startCmd(t, c)
	waitTcpdump(t, &buf, done)
	s, err := h.net.Socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, n := range sizes {
		if _, err := s.SendTo(make([]byte, n), 0, socket.Inet(kernelIP.String(), 9)); err != nil {
			t.Fatalf("sockstack send of %d bytes: %v", n, err)
		}
	}
	var py strings.Builder
	py.WriteString("import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n")
	for _, n := range sizes {
		py.WriteString("s.sendto(b'x'*" + strconv.Itoa(n) + ",('" + stackIP.String() + "',9))\n")
	}
	l.run(t, 10*time.Second, nil, "python3", "-c", py.String())
	if err := <-done; err != nil {
		t.Fatalf("tcpdump: %v\n%s", err, buf.String())
	}
	// A packet is a header line with its flags, then a line from its source.
	flagsRe := regexp.MustCompile(`flags \[([^\]]*)\]`)
	got := map[string][]string{}
	lines := strings.Split(buf.String(), "\n")
	for i := 0; i+1 < len(lines); i++ {
		m := flagsRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		src := strings.Fields(lines[i+1])
		if len(src) == 0 {
			continue
		}
		from := "kernel"
		if strings.HasPrefix(src[0], stackIP.String()) {
			from = "sockstack"
		}
		got[from] = append(got[from], m[1])
	}
	want := "DF,DF,+,none"
	for _, from := range []string{"sockstack", "kernel"} {
		if g := strings.Join(got[from], ","); g != want {
			t.Errorf("%s's datagrams left with flags %s, want %s\n%s", from, g, want, buf.String())
		}
	}
}
