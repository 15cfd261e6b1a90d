// Package tftp is the Trivial File Transfer Protocol (RFC 1350) with the
// option extension (RFC 2347) and the blksize (RFC 2348), timeout and
// tsize (RFC 2349) options, over UDP on a sockstack host: a server that
// serves and stores files under one root directory, and a client.
package tftp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Port is the well-known server port.
const Port = 69

// Opcodes.
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes (RFC 1350, and 8 from RFC 2347).
const (
	ErrUndefined  = 0
	ErrNotFound   = 1
	ErrAccess     = 2
	ErrDiskFull   = 3
	ErrIllegalOp  = 4
	ErrUnknownTID = 5
	ErrExists     = 6
	ErrNoUser     = 7
	ErrOption     = 8
)

// Limits of the options.
const (
	DefaultBlksize = 512
	MinBlksize     = 8
	MaxBlksize     = 65464
	MinTimeout     = 1
	MaxTimeout     = 255
)

// Error is a TFTP error: one received from the peer (Remote), or one
// this side sent before giving up.
type Error struct {
	Code   uint16
	Msg    string
	Remote bool
}

func (e *Error) Error() string {
	who := "local"
	if e.Remote {
		who = "peer"
	}
	return fmt.Sprintf("tftp: %s error %d: %s", who, e.Code, e.Msg)
}

// request is a parsed RRQ or WRQ.
type request struct {
	op       uint16
	filename string
	mode     string // lower case
	opts     map[string]string
	order    []string // option names as they came, lower case
}

func readCString(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

// parseRequest parses RRQ/WRQ; malformed ones give an error message for
// an ERROR packet.
func parseRequest(b []byte) (*request, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("short packet")
	}
	r := &request{op: binary.BigEndian.Uint16(b), opts: map[string]string{}}
	if r.op != opRRQ && r.op != opWRQ {
		return nil, fmt.Errorf("not a request")
	}
	var ok bool
	rest := b[2:]
	if r.filename, rest, ok = readCString(rest); !ok || r.filename == "" {
		return nil, fmt.Errorf("bad filename")
	}
	if r.mode, rest, ok = readCString(rest); !ok {
		return nil, fmt.Errorf("bad mode")
	}
	r.mode = strings.ToLower(r.mode)
	opts, err := parseOptions(rest)
	if err != nil {
		return nil, err
	}
	r.opts, r.order = opts.vals, opts.order
	return r, nil
}

type optList struct {
	vals  map[string]string
	order []string
}

func parseOptions(b []byte) (optList, error) {
	o := optList{vals: map[string]string{}}
	for len(b) > 0 {
		name, rest, ok := readCString(b)
		if !ok {
			return o, fmt.Errorf("bad option")
		}
		val, rest, ok := readCString(rest)
		if !ok {
			return o, fmt.Errorf("option %q without value", name)
		}
		name = strings.ToLower(name)
		if _, dup := o.vals[name]; !dup {
			o.order = append(o.order, name)
		}
		o.vals[name] = val
		b = rest
		if len(o.order) > 32 {
			return o, fmt.Errorf("too many options")
		}
	}
	return o, nil
}

func appendRequest(b []byte, op uint16, filename, mode string, opts [][2]string) []byte {
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(append(b, filename...), 0)
	b = append(append(b, mode...), 0)
	return appendOpts(b, opts)
}

func appendOpts(b []byte, opts [][2]string) []byte {
	for _, o := range opts {
		b = append(append(b, o[0]...), 0)
		b = append(append(b, o[1]...), 0)
	}
	return b
}

func appendOACK(b []byte, opts [][2]string) []byte {
	return appendOpts(binary.BigEndian.AppendUint16(b, opOACK), opts)
}

func appendACK(b []byte, block uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, opACK)
	return binary.BigEndian.AppendUint16(b, block)
}

func appendError(b []byte, code uint16, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	return append(append(b, msg...), 0)
}

func parseError(b []byte) *Error {
	e := &Error{Code: ErrUndefined, Remote: true}
	if len(b) >= 4 {
		e.Code = binary.BigEndian.Uint16(b[2:])
		msg := b[4:]
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		e.Msg = string(msg)
	}
	return e
}

// negotiated are the transfer parameters after option negotiation.
type negotiated struct {
	blksize int
	timeout int   // seconds, 0 when not negotiated
	tsize   int64 // -1 when not negotiated
}

// parseIntOpt parses a decimal option value within [lo, hi].
func parseIntOpt(v string, lo, hi int64) (int64, bool) {
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil || x < lo || x > hi {
		return 0, false
	}
	return x, true
}
