// Command structpack sends binary records over TCP, as C programs send
// structs and Python programs use struct.pack. Two lessons:
//
//   - Pack fields explicitly in network byte order (big-endian) with fixed
//     sizes, never by copying memory: the peer may differ in endianness,
//     padding and word size.
//   - TCP is a byte stream with no message boundaries. Each record goes out
//     behind a 4-byte length prefix, and the receiver loops until it has
//     exactly the bytes it needs: one recv may return part of a record, or
//     the end of one and the start of the next.
//
// The sender here dribbles its bytes out in awkward pieces on purpose.
//
//	go run ./examples/structpack
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/sockapi"
	"github.com/sockstack/sockstack/socket"
)

const port = 20013

// Reading is the fixed part of a record, 4+2+1 = 7 bytes on the wire
// (binary.Write adds no padding), followed by the sensor's name.
type Reading struct {
	Sensor uint32
	Temp   int16 // hundredths of a degree Celsius
	Flags  uint8
}

type record struct {
	Reading
	Name string
}

const maxRecord = 1 << 16 // refuse absurd lengths: never trust a length field

func main() {
	vnet.KernelFlag()
	nw := vnet.New("receiver", "sender")
	defer nw.Close()
	rcv, snd := nw.Hosts[0], nw.Hosts[1]

	ls, err := rcv.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	ls.SetSockOptInt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal(err)
	}
	if err := ls.Listen(1); err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, _, err := ls.Accept()
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		receive(c)
		ls.Close()
	}()

	s, err := snd.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Connect(socket.Inet(rcv.Addr, port)); err != nil {
		log.Fatal(err)
	}
	// No Nagle delay: each small piece leaves at once, so the receiver
	// really sees them separately.
	s.SetSockOptInt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
	var stream bytes.Buffer
	for _, r := range []record{
		{Reading{Sensor: 1, Temp: 2150, Flags: 0}, "kitchen"},
		{Reading{Sensor: 2, Temp: -1275, Flags: 1}, "freezer"},
		{Reading{Sensor: 70000, Temp: 3700, Flags: 3}, "greenhouse, south side"},
	} {
		stream.Write(pack(r))
	}
	all := stream.Bytes()
	fmt.Printf("sender: %d bytes for 3 records\n", len(all))
	// Pieces of 5, 3, 11, 1, 17, ... bytes: boundaries fall anywhere.
	sizes := []int{5, 3, 11, 1, 17}
	for i := 0; len(all) > 0; i++ {
		k := min(sizes[i%len(sizes)], len(all))
		if err := s.SendAll(all[:k], 0); err != nil {
			log.Fatal(err)
		}
		all = all[k:]
	}
	s.Close() // end of stream: the receiver's next read returns 0
	<-done
}

// pack lays a record out: length (4 bytes), then the fixed fields, then
// the name, all big-endian.
func pack(r record) []byte {
	var body bytes.Buffer
	binary.Write(&body, binary.BigEndian, r.Reading)
	body.WriteString(r.Name)
	out := binary.BigEndian.AppendUint32(nil, uint32(body.Len()))
	return append(out, body.Bytes()...)
}

// receive reads records until the sender closes.
func receive(c sockapi.Sock) {
	recvs := 0
	// recvExactly fills b completely, however the bytes arrive. io.EOF
	// before the first byte means a clean end; in the middle of a record
	// it means the sender cut it short.
	recvExactly := func(b []byte) error {
		for got := 0; got < len(b); {
			n, err := c.Recv(b[got:], 0)
			recvs++
			if err != nil {
				return err
			}
			if n == 0 {
				if got == 0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			got += n
		}
		return nil
	}
	hdr := make([]byte, 4)
	count := 0
	for {
		if err := recvExactly(hdr); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			log.Fatal("receiver: ", err)
		}
		size := binary.BigEndian.Uint32(hdr)
		if size < 7 || size > maxRecord {
			log.Fatalf("receiver: bad record length %d", size)
		}
		body := make([]byte, size)
		if err := recvExactly(body); err != nil {
			log.Fatal("receiver: ", err)
		}
		var r record
		binary.Read(bytes.NewReader(body[:7]), binary.BigEndian, &r.Reading)
		r.Name = string(body[7:])
		count++
		fmt.Printf("receiver: sensor %d %q: %.2f °C, flags %03b\n",
			r.Sensor, r.Name, float64(r.Temp)/100, r.Flags)
	}
	fmt.Printf("receiver: %d records in %d recv calls\n", count, recvs)
}
