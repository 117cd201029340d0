package dnsmasq

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotText: a configuration file holds NUL bytes; it is not read as configuration.
var ErrNotText = errors.New("not a text file")

// reason strips the path from an *os.PathError, so messages can name the router's path
// instead of the (possibly relocated) one that was opened.
func reason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// readRegular reads at most max bytes of the regular file at path. truncated is true when the
// file holds more. Errors carry no path (see reason). A fifo, device or folder is refused with ErrNotRegular before it is opened
// for reading (opening a fifo would block), and the open is non-blocking as well, in case the
// path is swapped between the two.
func readRegular(path string, max int64) (data []byte, truncated bool, err error) {
	fi, err := os.Stat(path) // follows symlinks, as dnsmasq's stat does; a loop gives ELOOP
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		return nil, false, ErrNotRegular
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, false, ErrNotRegular
	}
	data, err = io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(data)) > max {
		return data[:max], true, nil
	}
	return data, false, nil
}
