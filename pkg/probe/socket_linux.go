package probe

import "syscall"

// newSocket opens a socket that is non-blocking (so that os.NewFile hands it to the runtime's
// poller) and close-on-exec (so that a hook the daemon runs does not inherit it), both set
// atomically by the kernel, and numbered above 2 (see aboveStdio).
func newSocket(family, sotype int) (int, error) {
	fd, err := syscall.Socket(family, sotype|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil || fd > 2 {
		return fd, err
	}
	// aboveStdio: os treats descriptors 1 and 2 as standard output and error, and turns an
	// EPIPE on them (a TCP write after the server reset the connection) into a fatal SIGPIPE.
	// A daemon started with them closed gets its sockets there, so move the socket up.
	moved, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 3)
	syscall.Close(fd)
	if errno != 0 {
		return -1, errno
	}
	return int(moved), nil
}
