// Package wire holds the packet formats sockstack speaks: Ethernet II (with
// 802.1Q tags on parse), ARP, IPv4, ICMPv4, UDP and TCP (with its options),
// and the Internet checksum.
//
// Each header is a view type over a []byte: getters and setters read and
// write the bytes in place, nothing is copied. Parse functions check every
// length and field the format constrains and return a *ParseError naming
// the header and the reason, so callers can count drops by reason.
package wire
