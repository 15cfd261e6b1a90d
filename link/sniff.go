package link

import "github.com/sockstack/sockstack/wire"

// Direction says whether a frame entered or left an endpoint.
type Direction uint8

const (
	In  Direction = iota // received from the network
	Out                  // written to the network
)

func (d Direction) String() string {
	if d == Out {
		return "out"
	}
	return "in"
}

// Sniffer is middleware that shows every frame in and out to a function,
// for a one-line-per-packet trace. The function runs on the goroutine that
// moves the frame and must not keep the slice.
type Sniffer struct {
	inner Endpoint
	fn    func(dir Direction, frame []byte)
	recv  sniffRecv
}

type sniffRecv struct {
	fn func(dir Direction, frame []byte)
	r  Receiver
}

func (s *sniffRecv) DeliverFrames(frames [][]byte) {
	for _, f := range frames {
		s.fn(In, f)
	}
	s.r.DeliverFrames(frames)
}

// NewSniffer wraps inner; fn sees each frame received and each frame given
// to WriteFrames (before it is written, so a trace of two hosts keeps
// cause before effect; frames the inner endpoint then refuses were seen too).
func NewSniffer(inner Endpoint, fn func(dir Direction, frame []byte)) *Sniffer {
	return &Sniffer{inner: inner, fn: fn}
}

func (s *Sniffer) MTU() int               { return s.inner.MTU() }
func (s *Sniffer) Kind() Kind             { return s.inner.Kind() }
func (s *Sniffer) HardwareAddr() wire.MAC { return s.inner.HardwareAddr() }
func (s *Sniffer) Stats() *Stats          { return s.inner.Stats() }
func (s *Sniffer) Close() error           { return s.inner.Close() }

// Inner is the wrapped endpoint.
func (s *Sniffer) Inner() Endpoint { return s.inner }

func (s *Sniffer) Attach(r Receiver) {
	s.recv = sniffRecv{fn: s.fn, r: r}
	s.inner.Attach(&s.recv)
}

func (s *Sniffer) WriteFrames(frames [][]byte) (int, error) {
	for _, f := range frames {
		s.fn(Out, f)
	}
	return s.inner.WriteFrames(frames)
}

// WaitRoom passes to the inner endpoint; it returns at once if that one
// has no queue to wait for.
func (s *Sniffer) WaitRoom(done <-chan struct{}) { waitRoom(s.inner, done) }

func waitRoom(ep Endpoint, done <-chan struct{}) {
	if w, ok := ep.(Waiter); ok {
		w.WaitRoom(done)
	}
}
