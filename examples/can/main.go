// Command can is the CAN example of Python's socket documentation
// written in Go against sockstack's AF_CAN sockets: the same frame
// layout ("=IB3x8s": 32-bit id, length, three pad bytes, eight data
// bytes), the same calls (socket, bind to 'vcan0', recvfrom, send).
//
// The program runs on a virtual CAN bus in this process: a second ECU
// sends it a few frames and prints what comes back. Run it with
//
//	go run ./examples/can
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"github.com/sockstack/sockstack/link"
	"github.com/sockstack/sockstack/socket"
	"github.com/sockstack/sockstack/stack"
)

// CAN frame packing/unpacking (see 'struct can_frame' in <linux/can.h>).
const canFrameSize = 16

func buildCANFrame(canID uint32, data []byte) []byte {
	f := make([]byte, canFrameSize)
	binary.NativeEndian.PutUint32(f, canID)
	f[4] = byte(len(data))
	copy(f[8:], data) // the rest stays zero, like data.ljust(8, b'\x00')
	return f
}

func dissectCANFrame(f []byte) (canID uint32, dlc int, data []byte) {
	canID = binary.NativeEndian.Uint32(f)
	dlc = int(f[4])
	return canID, dlc, f[8 : 8+dlc]
}

// host makes one ECU: a stack whose CAN interface vcan0 sits on bus.
func host(name string, bus *link.CANBus) *socket.Net {
	n := socket.New(stack.New(stack.Options{Name: name}))
	n.AttachCAN(bus.Attach("vcan0"))
	return n
}

// pyBytes prints b like Python's repr of bytes: b'hi', b'\xde\xad'.
func pyBytes(b []byte) string {
	var sb strings.Builder
	sb.WriteString("b'")
	for _, c := range b {
		switch {
		case c == '\\' || c == '\'':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c >= 0x20 && c < 0x7f:
			sb.WriteByte(c)
		default:
			fmt.Fprintf(&sb, "\\x%02x", c)
		}
	}
	sb.WriteString("'")
	return sb.String()
}

// program is the Python example's loop, for count frames.
func program(w io.Writer, n *socket.Net, count int, ready, done chan<- struct{}) {
	defer close(done)
	// create a raw socket and bind it to the 'vcan0' interface
	s, err := n.Socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Bind(&socket.SockaddrCAN{Ifname: "vcan0"}); err != nil {
		log.Fatal(err)
	}
	ready <- struct{}{}
	cf := make([]byte, canFrameSize)
	for range count {
		if _, _, err := s.RecvFrom(cf, 0); err != nil {
			log.Fatal(err)
		}
		id, dlc, data := dissectCANFrame(cf)
		fmt.Fprintf(w, "Received: can_id=%x, can_dlc=%x, data=%s\n", id, dlc, pyBytes(data))
		if _, err := s.Send(cf, 0); err != nil {
			fmt.Fprintln(w, "Error sending CAN frame")
		}
		if _, err := s.Send(buildCANFrame(0x01, []byte{1, 2, 3}), 0); err != nil {
			fmt.Fprintln(w, "Error sending CAN frame")
		}
	}
}

func main() {
	flag.Parse() // no flags: -kernel and the like are refused, not ignored
	run(os.Stdout)
}

func run(w io.Writer) {
	bus := link.NewCANBus("can", link.CANBusOptions{})
	ecu, peer := host("ecu", bus), host("peer", bus)

	ready, done := make(chan struct{}), make(chan struct{})
	go program(w, ecu, 3, ready, done)
	<-ready

	// The other ECU, like `cansend vcan0 123#...` and `candump vcan0`.
	s, err := peer.Socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Bind(&socket.SockaddrCAN{Ifname: "vcan0"}); err != nil {
		log.Fatal(err)
	}
	for i, payload := range [][]byte{[]byte("hi"), {0xde, 0xad, 0xbe, 0xef}, []byte("sockstk")} {
		if _, err := s.Send(buildCANFrame(uint32(0x100+i), payload), 0); err != nil {
			log.Fatal(err)
		}
		// Two frames come back: the echo and the program's 0x01 frame.
		for range 2 {
			cf := make([]byte, canFrameSize)
			if _, err := s.Recv(cf, 0); err != nil {
				log.Fatal(err)
			}
			id, dlc, data := dissectCANFrame(cf)
			fmt.Fprintf(w, "  peer got: can_id=%x, can_dlc=%x, data=%s\n", id, dlc, pyBytes(data))
		}
	}
	<-done
}
