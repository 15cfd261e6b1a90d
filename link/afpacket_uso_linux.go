package link

import (
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// packetUSO reports whether the running kernel carries UDP super-
// datagrams (GSO_UDP_L4) in a packet socket's virtio-net header both
// ways: from 6.2 on, where virtio_net_hdr_to_skb and _from_skb learned
// the type (with tun's USO). An older kernel refuses such a send with
// EINVAL, so there the stack cuts them itself. Checked on 6.18 by
// TestInteropAFPacketUSO (docs/DECISIONS.md).
var packetUSO = sync.OnceValue(func() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 6, 2)
})

// kernelAtLeast parses a release string ("6.18.44", "5.15.0-91-generic")
// and compares its major.minor with maj.min; unparsable is false.
func kernelAtLeast(release string, maj, min int) bool {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 || !strings.HasPrefix(release, f[0]) {
		return false
	}
	a, err1 := strconv.Atoi(f[0])
	b, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return a > maj || a == maj && b >= min
}
