//go:build !linux

package passive

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openSocket: packet sockets are Linux only.
func openSocket([]insn) (*os.File, error) {
	return nil, fmt.Errorf("%w: no AF_PACKET (not Linux)", ErrUnavailable)
}

// attach: packet sockets are Linux only.
func attach(syscall.RawConn, []insn) error {
	return errors.New("no AF_PACKET")
}

// drops: packet sockets are Linux only.
func drops(int) uint32 { return 0 }
