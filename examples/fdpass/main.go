// Command fdpass hands accepted TCP connections from an acceptor to a
// worker over an AF_UNIX socket, as pre-forked servers, systemd socket
// activation and privilege-separated daemons do: sendmsg with an
// SCM_RIGHTS control message carries the descriptor, the worker's
// recvmsg gets a new descriptor for the same open connection, and the
// acceptor closes its own copy without closing the connection.
//
// The control channel is SOCK_SEQPACKET (connected, like a stream, but
// each sendmsg is one message, like a datagram), and the acceptor checks
// who connected with SO_PEERCRED. In sockstack a descriptor is a Fileno
// of the host's socket table (socket.Net), its "process".
//
//	go run ./examples/fdpass
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/sockstack/sockstack/examples/internal/vnet"
	"github.com/sockstack/sockstack/socket"
	"golang.org/x/sys/unix"
)

const (
	port    = 20015
	control = "@fdpass-workers" // an abstract AF_UNIX name: nothing on disk
)

func main() {
	nw := vnet.New("server", "c1", "c2")
	defer nw.Close()
	srv := nw.Hosts[0]
	n := srv.Net

	// The acceptor's control socket, and the TCP listener.
	ctl, err := n.Socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := ctl.Bind(&socket.SockaddrUnix{Name: control}); err != nil {
		log.Fatal(err)
	}
	if err := ctl.Listen(1); err != nil {
		log.Fatal(err)
	}
	ls, err := n.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := ls.Bind(socket.Inet("0.0.0.0", port)); err != nil {
		log.Fatal(err)
	}
	if err := ls.Listen(4); err != nil {
		log.Fatal(err)
	}

	// The worker connects to the acceptor and serves what it is given.
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		w, err := n.Socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0)
		if err != nil {
			log.Fatal(err)
		}
		defer w.Close()
		if err := w.Connect(&socket.SockaddrUnix{Name: control}); err != nil {
			log.Fatal(err)
		}
		worker(n, w)
	}()

	wk, _, err := ctl.Accept()
	if err != nil {
		log.Fatal(err)
	}
	cred, _ := wk.GetSockOpt(socket.SOL_SOCKET, socket.SO_PEERCRED)
	c := cred.(socket.Ucred)
	fmt.Printf("acceptor: worker connected, SO_PEERCRED is this process: %v\n",
		int(c.Pid) == os.Getpid() && int(c.Uid) == os.Getuid() && int(c.Gid) == os.Getgid())

	for i, h := range nw.Hosts[1:] {
		clientDone := make(chan struct{})
		go func() {
			defer close(clientDone)
			client(h, srv.Addr)
		}()
		conn, from, err := ls.Accept()
		if err != nil {
			log.Fatal(err)
		}
		note := fmt.Sprintf("connection %d from %s", i+1, from)
		// One message: a note, and the descriptor in SCM_RIGHTS.
		if _, err := wk.SendMsgControl([]byte(note), unix.UnixRights(conn.Fileno()), 0, nil); err != nil {
			log.Fatal(err)
		}
		conn.Close() // our copy only: the worker's keeps the connection
		fmt.Printf("acceptor: handed over %s and closed its own descriptor\n", note)
		<-clientDone
	}
	wk.Close() // the worker reads end of file and stops
	<-workerDone
	fmt.Printf("acceptor: descriptors still in flight: %d\n", n.UnixInflight())
	ls.Close()
	ctl.Close()
}

// worker receives descriptors until the acceptor closes the channel.
func worker(n *socket.Net, w *socket.Socket) {
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4)) // room for one descriptor
	for {
		k, oobn, flags, _, err := w.RecvMsgControl(buf, oob, 0)
		if err != nil {
			log.Fatal(err)
		}
		if k == 0 && oobn == 0 {
			fmt.Println("worker: the acceptor closed the channel")
			return
		}
		if flags&socket.MSG_CTRUNC != 0 {
			log.Fatal("worker: control buffer too small, descriptors lost")
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			log.Fatalf("worker: control messages %v %v", msgs, err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			log.Fatalf("worker: rights %v %v", fds, err)
		}
		conn := n.Lookup(fds[0]) // our new descriptor for the connection
		fmt.Printf("worker: got a descriptor with %q\n", buf[:k])
		req := make([]byte, 64)
		r, err := conn.Recv(req, 0)
		if err != nil {
			log.Fatal(err)
		}
		if err := conn.SendAll([]byte("served by the worker: "+string(req[:r])), 0); err != nil {
			log.Fatal(err)
		}
		conn.Close() // the last descriptor: the client reads end of stream
	}
}

func client(h vnet.Host, server string) {
	s, err := h.Socket(socket.AF_INET, socket.SOCK_STREAM, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.Connect(socket.Inet(server, port)); err != nil {
		log.Fatal(err)
	}
	if err := s.SendAll([]byte("hello from "+h.Name), 0); err != nil {
		log.Fatal(err)
	}
	var reply []byte
	buf := make([]byte, 128)
	for {
		k, err := s.Recv(buf, 0)
		if err != nil {
			log.Fatal(err)
		}
		if k == 0 {
			break // the worker closed the connection
		}
		reply = append(reply, buf[:k]...)
	}
	fmt.Printf("%s: reply %q, then end of stream\n", h.Name, reply)
}
