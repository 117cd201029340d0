package dnsmasq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// maxPIDFile bounds how much of a pid file is read: a pid is at most a few digits, so anything
// longer is garbage and is not read into memory.
const maxPIDFile = 64

// Signaller sends SIGHUP to the dnsmasq whose pid is in PIDFile, after checking that the pid
// really is a dnsmasq process: a stale pid file may name a pid the kernel has given to
// another program, which must never receive the signal.
type Signaller struct {
	// PIDFile is dnsmasq's pid file, e.g. /var/run/dnsmasq/dnsmasq.cfg01411c.pid.
	PIDFile string
	// ProcRoot is where /proc is mounted; empty means "/proc". Tests point it at a fake tree.
	ProcRoot string
	// Kill sends sig to pid; nil means syscall.Kill. Tests record calls with it.
	Kill func(pid int, sig syscall.Signal) error
}

// Reload sends SIGHUP to dnsmasq so that it re-reads its servers-file, and returns the pid it
// signalled. Errors wrap ErrNoPIDFile (missing, empty or garbage pid file), ErrNotRunning (no
// such process: a stale pid file) or ErrNotDnsmasq (a foreign process, left alone), and name
// the pid file and the pid.
func (s Signaller) Reload() (int, error) {
	pid, err := s.Check()
	if err != nil {
		return pid, err
	}
	kill := s.Kill
	if kill == nil {
		kill = syscall.Kill
	}
	if err := kill(pid, syscall.SIGHUP); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return pid, fmt.Errorf("%s: pid %d: %w (it exited just now)", s.PIDFile, pid, ErrNotRunning)
		}
		return pid, fmt.Errorf("%s: pid %d: send SIGHUP: %w", s.PIDFile, pid, err)
	}
	return pid, nil
}

// Check reads the pid file and verifies that the pid is a running dnsmasq, without
// signalling it. It returns the pid (0 when the pid file is unusable) and the same errors as
// Reload.
func (s Signaller) Check() (int, error) {
	pid, err := readPIDFile(s.PIDFile)
	if err != nil {
		return 0, err
	}
	root := s.ProcRoot
	if root == "" {
		root = "/proc"
	}
	dir := filepath.Join(root, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return pid, fmt.Errorf("%s: pid %d: %w (no such process: stale pid file)", s.PIDFile, pid, ErrNotRunning)
	}
	if err != nil {
		return pid, fmt.Errorf("%s: pid %d: read process state: %w", s.PIDFile, pid, err)
	}
	if procState(stat) == 'Z' {
		return pid, fmt.Errorf("%s: pid %d: %w (the process has exited: zombie)", s.PIDFile, pid, ErrNotRunning)
	}
	name, err := processName(dir)
	if err != nil {
		return pid, fmt.Errorf("%s: pid %d: %w", s.PIDFile, pid, err)
	}
	if name != "dnsmasq" {
		return pid, fmt.Errorf("%s: pid %d is %q: %w (stale pid file; not signalled)", s.PIDFile, pid, name, ErrNotDnsmasq)
	}
	return pid, nil
}

// readPIDFile reads a decimal pid greater than 1 (0, -1 and 1 would signal a process group,
// every process or init) followed by optional white space.
func readPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %w", path, ErrNoPIDFile, err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxPIDFile+1))
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %w", path, ErrNoPIDFile, err)
	}
	if len(b) > maxPIDFile {
		return 0, fmt.Errorf("%s: %w: longer than %d bytes", path, ErrNoPIDFile, maxPIDFile)
	}
	text := bytes.TrimSpace(b)
	if len(text) == 0 {
		return 0, fmt.Errorf("%s: %w: empty", path, ErrNoPIDFile)
	}
	pid, err := strconv.Atoi(string(text))
	if err != nil || pid <= 1 || text[0] == '+' {
		return 0, fmt.Errorf("%s: %w: %q is not a process id", path, ErrNoPIDFile, text)
	}
	return pid, nil
}

// procState returns the state letter of /proc/PID/stat ("PID (COMM) S ..."); COMM may hold
// spaces and parentheses, so the state follows the last ')'.
func procState(stat []byte) byte {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0
	}
	return stat[i+2]
}

// processName is the process's comm, or when that is not "dnsmasq" the base name of its
// executable (when readable): a dnsmasq renamed by its packager still counts.
func processName(dir string) (string, error) {
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return "", fmt.Errorf("read process name: %w", err)
	}
	name := string(bytes.TrimRight(comm, "\n"))
	if name == "dnsmasq" {
		return name, nil
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil && filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == "dnsmasq" {
		return "dnsmasq", nil
	}
	return name, nil
}
