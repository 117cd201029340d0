package dnsmasq

import "errors"

// Sentinel errors; every error this package returns wraps one of these or an error of the
// os package, so callers can test them with errors.Is.
var (
	// ErrEmpty: an empty server list would leave dnsmasq answering REFUSED to everything.
	ErrEmpty = errors.New("empty server list")
	// ErrBadUpstream: an upstream that cannot be written as server=<IP literal>[#<port>].
	ErrBadUpstream = errors.New("invalid upstream")
	// ErrBadState: a state other than healthy, failover and stopped.
	ErrBadState = errors.New("invalid state")
	// ErrBadLine: a servers-file line that is neither a comment nor server=<IP>[#<port>].
	ErrBadLine = errors.New("invalid servers-file line")
	// ErrNoInstance: the dhcp config has no such dnsmasq section.
	ErrNoInstance = errors.New("no dnsmasq section")
	// ErrShortWrite: the servers-file could not be written completely.
	ErrShortWrite = errors.New("short write")
	// ErrNotRegular: the servers-file path is not a regular file (a symlink, folder, fifo...).
	ErrNotRegular = errors.New("not a regular file")
	// ErrNoPIDFile: the pid file is missing, empty or does not hold a process id.
	ErrNoPIDFile = errors.New("no usable pid file")
	// ErrNotRunning: the pid file names a process that does not exist (a stale pid file).
	ErrNotRunning = errors.New("dnsmasq is not running")
	// ErrNotDnsmasq: the pid file names a live process that is not dnsmasq; it is never signalled.
	ErrNotDnsmasq = errors.New("process is not dnsmasq")
)
