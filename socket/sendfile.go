package socket

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// sendfileChunk is how much of the file one step reads and sends, as
// Linux's splice moves at most a pipe's 16 pages at a time: on a stream
// socket, and as one message each on AF_UNIX datagram and seqpacket
// sockets. An IP datagram socket sends one datagram, of at most
// maxDgramFile bytes read: one more than any IP datagram's payload can
// be, so a longer file fails with the send's EMSGSIZE, as Linux's does
// when the corked datagram outgrows 64 KiB, while count itself is not
// limited (Linux sends what the file has).
const (
	sendfileChunk = 64 << 10
	maxDgramFile  = 64 << 10
)

// SendFile is sendfile(2) with the socket as out_fd: count bytes of f,
// from *offset when offset is not nil (moved on by what was sent; the
// file's position stays), else from f's position (moved on). It returns
// the bytes sent: fewer than count at the end of the file, on a
// non-blocking socket when the send buffer fills (EAGAIN only when none
// went), or when a send timeout ends the wait. On a UDP, raw or ping
// socket the bytes are one datagram (EMSGSIZE when that is too long,
// however large count is: only the file's bytes count, as Linux); on an
// AF_UNIX datagram or seqpacket socket, messages of 64 KiB and a last
// shorter one, as Linux's splice sends them.
// Errors are the socket's, as send's (EPIPE, ENOTCONN, EDESTADDRREQ),
// or the file's: EBADF when f is not open for reading, EINVAL for a
// negative offset or count, ESPIPE when the file cannot seek.
func (s *Socket) SendFile(f *os.File, offset *int64, count int) (int, error) {
	if s.closed.Load() {
		return 0, syscall.EBADF
	}
	if f == nil || count < 0 || offset != nil && *offset < 0 {
		return 0, syscall.EINVAL
	}
	pos := int64(0)
	if offset != nil {
		pos = *offset
	} else {
		p, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, fileErrno(err)
		}
		pos = p
	}
	chunk := sendfileChunk
	_, one := s.ep.(*dgramEP)
	if one {
		// An IP datagram socket sends the bytes as one datagram, as
		// Linux's splice corks the pages of one sendfile into one.
		chunk = maxDgramFile
	}
	buf := make([]byte, min(count, chunk))
	total := 0
	var err error
	for total < count && (total == 0 || !one) {
		k, rerr := f.ReadAt(buf[:min(len(buf), count-total)], pos)
		if k == 0 {
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				err = fileErrno(rerr)
			}
			break
		}
		// Blocking: Send waits for room and takes all of it (or its
		// timeout ends the call); non-blocking: it takes what fits.
		n, serr := s.Send(buf[:k], 0)
		total += n
		pos += int64(n)
		if serr != nil {
			err = serr
			break
		}
		if n < k {
			break // the send buffer filled
		}
	}
	if offset != nil {
		*offset = pos
	} else if _, serr := f.Seek(pos, io.SeekStart); serr != nil && err == nil {
		err = fileErrno(serr)
	}
	if total > 0 {
		return total, nil
	}
	return 0, err
}

// fileErrno is the errno of a file operation's error.
func fileErrno(err error) error {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return syscall.EBADF
}
