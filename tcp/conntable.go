package tcp

import (
	"encoding/binary"
)

// connTable maps 4-tuples to connections. Its keys are packed bytes, not
// connKey's two netip.AddrPort (64 bytes with their zone pointers): a
// table entry is memory per connection (issue 10: a million
// connections), and an IPv4 entry is 12 + 8 bytes this way. A key with a
// zone, which the stack does not make for connections, keeps the full
// connKey so that no two keys the old table told apart collide.
type connTable struct {
	v4    map[conn4Key]*Endpoint
	v6    map[conn6Key]*Endpoint
	zoned map[connKey]*Endpoint // made on first use
	n     int
}

// conn4Key is local address, remote address, local port, remote port.
type conn4Key [12]byte

// conn6Key is the same with 16-byte addresses, and a last byte telling
// which of them were IPv4 (an IPv4 address and its IPv4-mapped IPv6 form
// are different keys, as they were as netip.AddrPort).
type conn6Key [37]byte

func newConnTable() connTable {
	return connTable{v4: make(map[conn4Key]*Endpoint), v6: make(map[conn6Key]*Endpoint)}
}

// kind says which map holds k: 4, 6 or 0 (zoned).
func (k *connKey) kind() int {
	la, ra := k.local.Addr(), k.remote.Addr()
	if la.Is4() && ra.Is4() {
		return 4 // an IPv4 address has no zone
	}
	if la.Zone() != "" || ra.Zone() != "" {
		return 0
	}
	return 6
}

func (k *connKey) pack4() (b conn4Key) {
	l, r := k.local.Addr().As4(), k.remote.Addr().As4()
	copy(b[0:4], l[:])
	copy(b[4:8], r[:])
	binary.BigEndian.PutUint16(b[8:], k.local.Port())
	binary.BigEndian.PutUint16(b[10:], k.remote.Port())
	return b
}

func (k *connKey) pack6() (b conn6Key) {
	la, ra := k.local.Addr(), k.remote.Addr()
	l, r := la.As16(), ra.As16()
	copy(b[0:16], l[:])
	copy(b[16:32], r[:])
	binary.BigEndian.PutUint16(b[32:], k.local.Port())
	binary.BigEndian.PutUint16(b[34:], k.remote.Port())
	if la.Is4() {
		b[36] |= 1
	}
	if ra.Is4() {
		b[36] |= 2
	}
	if !la.IsValid() {
		b[36] |= 4
	}
	if !ra.IsValid() {
		b[36] |= 8
	}
	return b
}

func (t *connTable) get(k connKey) *Endpoint {
	switch k.kind() {
	case 4:
		return t.v4[k.pack4()]
	case 6:
		return t.v6[k.pack6()]
	}
	return t.zoned[k]
}

// put sets k's entry; it returns false, changing nothing, when another
// endpoint holds k.
func (t *connTable) put(k connKey, e *Endpoint) bool {
	if old := t.get(k); old != nil {
		return old == e
	}
	switch k.kind() {
	case 4:
		t.v4[k.pack4()] = e
	case 6:
		t.v6[k.pack6()] = e
	default:
		if t.zoned == nil {
			t.zoned = make(map[connKey]*Endpoint)
		}
		t.zoned[k] = e
	}
	t.n++
	return true
}

// del removes k's entry if e holds it.
func (t *connTable) del(k connKey, e *Endpoint) {
	if t.get(k) != e || e == nil {
		return
	}
	switch k.kind() {
	case 4:
		delete(t.v4, k.pack4())
	case 6:
		delete(t.v6, k.pack6())
	default:
		delete(t.zoned, k)
	}
	t.n--
}

func (t *connTable) len() int { return t.n }

// each calls f for every connection.
func (t *connTable) each(f func(*Endpoint)) {
	for _, e := range t.v4 {
		f(e)
	}
	for _, e := range t.v6 {
		f(e)
	}
	for _, e := range t.zoned {
		f(e)
	}
}
