package tftp

import "io"

// netasciiReader turns local text (LF line ends) into netascii: LF
// becomes CR LF and a bare CR becomes CR NUL (RFC 764).
type netasciiReader struct {
	r       io.Reader
	in      []byte
	pending byte // second byte of an expansion still to give out
	has     bool
}

func newNetasciiReader(r io.Reader) *netasciiReader {
	return &netasciiReader{r: r, in: make([]byte, 4096)}
}

func (n *netasciiReader) Read(p []byte) (int, error) {
	out := 0
	if n.has && len(p) > 0 {
		p[0] = n.pending
		n.has = false
		out = 1
	}
	if out == len(p) {
		return out, nil
	}
	// Read at most half the room so every byte can expand to two.
	room := (len(p) - out) / 2
	if room == 0 {
		room = 1
	}
	if room > len(n.in) {
		room = len(n.in)
	}
	k, err := n.r.Read(n.in[:room])
	for _, c := range n.in[:k] {
		var first, second byte
		two := true
		switch c {
		case '\n':
			first, second = '\r', '\n'
		case '\r':
			first, second = '\r', 0
		default:
			first, two = c, false
		}
		p[out] = first
		out++
		if two {
			if out < len(p) {
				p[out] = second
				out++
			} else {
				n.pending, n.has = second, true
			}
		}
	}
	if out > 0 && err == io.EOF {
		err = nil // give EOF on the next call
	}
	return out, err
}

// netasciiWriter turns netascii back into local text: CR LF becomes LF,
// CR NUL becomes CR; a CR followed by anything else is kept as it is.
type netasciiWriter struct {
	w   io.Writer
	cr  bool // the last byte was a CR not yet written
	out []byte
}

func newNetasciiWriter(w io.Writer) *netasciiWriter { return &netasciiWriter{w: w} }

func (n *netasciiWriter) Write(p []byte) (int, error) {
	n.out = n.out[:0]
	for _, c := range p {
		if n.cr {
			n.cr = false
			switch c {
			case '\n':
				n.out = append(n.out, '\n')
				continue
			case 0:
				n.out = append(n.out, '\r')
				continue
			default:
				n.out = append(n.out, '\r')
			}
		}
		if c == '\r' {
			n.cr = true
			continue
		}
		n.out = append(n.out, c)
	}
	if _, err := n.w.Write(n.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes a CR left at the very end.
func (n *netasciiWriter) Flush() error {
	if n.cr {
		n.cr = false
		_, err := n.w.Write([]byte{'\r'})
		return err
	}
	return nil
}

// netasciiSize is the length of r's content once converted.
func netasciiSize(r io.Reader) (int64, error) {
	buf := make([]byte, 32768)
	var size int64
	for {
		k, err := r.Read(buf)
		size += int64(k)
		for _, c := range buf[:k] {
			if c == '\n' || c == '\r' {
				size++
			}
		}
		if err == io.EOF {
			return size, nil
		}
		if err != nil {
			return size, err
		}
	}
}
