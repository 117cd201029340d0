//go:build unix && !linux

package probe

import "syscall"

// newSocket opens a socket that is non-blocking (so that os.NewFile hands it to the runtime's
// poller), close-on-exec (so that a hook the daemon runs does not inherit it) and numbered
// above 2 (see aboveStdio in socket_linux.go). Without SOCK_CLOEXEC (macOS), the fork lock keeps
// a concurrent fork from inheriting it in between. The router is Linux; this keeps the package
// building and testable on a developer's Mac.
func newSocket(family, sotype int) (int, error) {
	var low []int // the same socket at descriptors 0 to 2, closed once it has a higher one
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(family, sotype, 0)
	for err == nil && fd <= 2 {
		low = append(low, fd)
		fd, err = syscall.Dup(fd)
	}
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	for _, l := range low {
		syscall.Close(l)
	}
	if err != nil {
		return -1, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}
