package interop

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockstack/sockstack/apps/tftp"
)

// tftpSizes are the sizes where a lock-step client can go wrong: empty,
// around one 512-byte block, and exact multiples of the block size (the
// last block is then empty).
var tftpSizes = []int64{0, 511, 512, 513, 1024, 1428, 3 * 1428, 1428*4 + 1}

// `sockstack tftp get` (its own stack on the TAP) against the kernel's
// in.tftpd, for every size and two block sizes, and a 40 MB file that
// takes block numbers past 65535 (512-byte blocks); files compared by
// SHA-256.
func TestInteropToolTFTPGetVsTftpdHpa(t *testing.T) {
	l := newLab(t)
	needTools(t, "in.tftpd", "ss")
	kroot := t.TempDir()
	os.Chmod(kroot, 0o777)
	sums := map[string]string{}
	for _, n := range tftpSizes {
		name := fmt.Sprintf("f%d.bin", n)
		_, sums[name] = randomFile(t, kroot, name, n)
	}
	_, sums["big.bin"] = randomFile(t, kroot, "big.bin", 40<<20)
	l.background(t, "in.tftpd", "--foreground", "--listen", "--address", kernelIP.String()+":69", "--secure", "--user", "root", kroot)
	l.waitListen(t, "udp", 69)
	dst := t.TempDir()
	get := func(t *testing.T, name string, blksize int) string {
		local := filepath.Join(dst, fmt.Sprintf("%d-%s", blksize, name))
		args := append([]string{"tftp", "get"}, l.tapArgs()...)
		args = append(args, "--blksize", fmt.Sprint(blksize), kernelIP.String(), name, local)
		out, err := l.sockstack(t, 3*time.Minute, nil, args...)
		if err != nil {
			t.Fatalf("sockstack tftp get %s (blksize %d): %v\n%s", name, blksize, err, out)
		}
		if got := fileHash(t, local); got != sums[name] {
			t.Fatalf("%s blksize %d: SHA-256 %s, want %s\n%s", name, blksize, got, sums[name], out)
		}
		return out
	}
	for _, bs := range []int{512, 1428} {
		for _, n := range tftpSizes {
			t.Run(fmt.Sprintf("size_%d_blksize_%d", n, bs), func(t *testing.T) {
				out := get(t, fmt.Sprintf("f%d.bin", n), bs)
				if !strings.Contains(out, fmt.Sprintf("received %s bytes", groupDigitsInt(n))) {
					t.Errorf("no summary line:\n%s", out)
				}
			})
		}
	}
	t.Run("40MB_past_block_65535", func(t *testing.T) {
		start := time.Now()
		out := get(t, "big.bin", 512)
		t.Logf("40 MiB with 512-byte blocks (81,920 blocks) in %v:\n%s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	})
}

// `sockstack tftp get --kernel` (kernel sockets in the namespace)
// against sockstack's own TFTP server on the TAP, for the same sizes and
// the 40 MB file.
func TestInteropToolTFTPGetVsSockstackServer(t *testing.T) {
	l := newLab(t)
	h := l.startStack("")
	root := t.TempDir()
	sums := map[string]string{}
	for _, n := range tftpSizes {
		name := fmt.Sprintf("f%d.bin", n)
		_, sums[name] = randomFile(t, root, name, n)
	}
	_, sums["big.bin"] = randomFile(t, root, "big.bin", 40<<20)
	s, err := tftp.Serve(h.net, netip.AddrPortFrom(netip.IPv4Unspecified(), 69), tftp.ServerConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	bin := sockstackBin(t)
	dst := t.TempDir()
	get := func(t *testing.T, name string, blksize int) {
		local := filepath.Join(dst, fmt.Sprintf("%d-%s", blksize, name))
		out, err := l.try(3*time.Minute, nil, bin, "tftp", "get", "--kernel", "--blksize", fmt.Sprint(blksize), stackIP.String(), name, local)
		if err != nil {
			t.Fatalf("sockstack tftp get --kernel %s: %v\n%s", name, err, out)
		}
		if got := fileHash(t, local); got != sums[name] {
			t.Fatalf("%s blksize %d: SHA-256 %s, want %s\n%s", name, blksize, got, sums[name], out)
		}
	}
	for _, bs := range []int{512, 1428} {
		for _, n := range tftpSizes {
			t.Run(fmt.Sprintf("size_%d_blksize_%d", n, bs), func(t *testing.T) { get(t, fmt.Sprintf("f%d.bin", n), bs) })
		}
	}
	t.Run("40MB_past_block_65535", func(t *testing.T) { get(t, "big.bin", 512) })
}

// groupDigitsInt writes n as the tools print byte counts (34,680).
func groupDigitsInt(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
