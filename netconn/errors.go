package netconn

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/sockstack/sockstack/socket"
)

// timeoutError is what a dial that ran out of time wraps, like the
// standard library's "i/o timeout": it is a net.Error with Timeout()
// true and matches context.DeadlineExceeded.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(t error) bool {
	return t == context.DeadlineExceeded || t == os.ErrDeadlineExceeded
}

// canceledError is what a dial whose context was canceled wraps.
type canceledError struct{}

func (canceledError) Error() string   { return "operation was canceled" }
func (canceledError) Is(t error) bool { return t == context.Canceled }

var (
	errDialTimeout  error = timeoutError{}
	errDialCanceled error = canceledError{}
)

// ctxErr turns a context's error into the error a dial reports.
func ctxErr(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return errDialCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return errDialTimeout
	}
	return err
}

// mapErr turns an error from the socket layer into what the standard
// library's net package would put in OpError.Err: os.ErrDeadlineExceeded
// for an expired deadline, net.ErrClosed once the conn is closed, and an
// *os.SyscallError naming the call for an errno.
func mapErr(call string, err error, closed bool) error {
	if err == nil {
		return nil
	}
	var te *socket.TimeoutError
	if errors.As(err, &te) {
		if te.Deadline {
			return os.ErrDeadlineExceeded
		}
		return err
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if closed && en == syscall.EBADF {
			return net.ErrClosed
		}
		return os.NewSyscallError(call, en)
	}
	return err
}
