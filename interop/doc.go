// Package interop holds the interoperability suite: sockstack on a TAP
// device in a network namespace the test creates, with the Linux kernel and
// its everyday tools (ping, nc, socat, curl, python3, tftp-hpa, in.tftpd,
// tshark, nstat) as the peer. The tests need root; they skip otherwise,
// and skip when a tool is missing unless CI=true, when they fail.
//
//	sudo go test -v ./interop
//	sudo go test -run TestInteropThroughput -v ./interop
package interop
