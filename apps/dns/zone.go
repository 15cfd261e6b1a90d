package dns

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// MaxZoneLine bounds one line of a zone file; longer lines are an error
// (not a silent cut).
const MaxZoneLine = 4096

// Zone is a table of names read from a file in /etc/hosts form: "ADDRESS
// NAME [ALIAS...]" per line, '#' starting a comment.
type Zone struct {
	byName map[string][]netip.Addr
	byAddr map[netip.Addr][]string
}

func zoneKey(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// ParseZone reads a zone; errors name the line.
func ParseZone(r io.Reader) (*Zone, error) {
	z := &Zone{byName: map[string][]netip.Addr{}, byAddr: map[netip.Addr][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 512), MaxZoneLine)
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(text)
		if len(f) == 0 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is not an IP address", line, f[0])
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: an address without a name", line)
		}
		for _, name := range f[1:] {
			k := zoneKey(name)
			z.byName[k] = append(z.byName[k], a)
			z.byAddr[a] = append(z.byAddr[a], strings.TrimSuffix(name, "."))
		}
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, fmt.Errorf("line %d: longer than %d bytes", line+1, MaxZoneLine)
		}
		return nil, err
	}
	return z, nil
}

// LoadZone reads a zone file.
func LoadZone(path string) (*Zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := ParseZone(f)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", path, err)
	}
	return z, nil
}

// LookupHost implements Records.
func (z *Zone) LookupHost(name string) ([]netip.Addr, bool) {
	a, ok := z.byName[zoneKey(name)]
	return a, ok
}

// LookupAddr implements Records.
func (z *Zone) LookupAddr(a netip.Addr) []string { return z.byAddr[a] }

// Chain answers from the first of its tables that knows a name.
type Chain []Records

// LookupHost implements Records.
func (c Chain) LookupHost(name string) ([]netip.Addr, bool) {
	for _, r := range c {
		if a, ok := r.LookupHost(name); ok {
			return a, true
		}
	}
	return nil, false
}

// LookupAddr implements Records.
func (c Chain) LookupAddr(a netip.Addr) []string {
	for _, r := range c {
		if n := r.LookupAddr(a); len(n) > 0 {
			return n
		}
	}
	return nil
}
