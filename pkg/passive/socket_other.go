//go:build !linux

package passive

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/net/bpf"
)

// openSocket: packet sockets are Linux only.
func openSocket([]bpf.RawInstruction) (*os.File, error) {
	return nil, fmt.Errorf("%w: no AF_PACKET (not Linux)", ErrUnavailable)
}

// attach: packet sockets are Linux only.
func attach(syscall.RawConn, []bpf.RawInstruction) error {
	return errors.New("no AF_PACKET")
}
