package dnsmasq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// maxPIDFile bounds how much of a pid file is read: a pid is at most a few digits, so anything
// longer is garbage and is not read into memory.
const maxPIDFile = 64

// maxProcEntries bounds the /proc scan that finds a jailed dnsmasq: an OpenWrt router runs a
// few hundred processes and a busy desktop a few thousand, so 10000 entries see every process
// on any machine this runs on, and cap a scan's cost (measured: 2 ms for 132 processes, about
// 15 us each, on a 2-core x86 VM; a router is slower). A /proc with more entries is not
// guessed at: the scan stops and signals nothing.
const maxProcEntries = 10000

// procBatch is how many /proc entries are read per getdents call: the directory is never held
// in memory whole.
const procBatch = 256

// maxCmdline bounds how much of /proc/PID/cmdline is read: OpenWrt's dnsmasq command line is
// about 100 bytes and ujail's, which wraps it, about 800; 4 KiB leaves room for long paths.
const maxCmdline = 4096

// openwrtConfDir is where OpenWrt's /etc/init.d/dnsmasq writes the config of the section
// SECTION, as dnsmasq.conf.SECTION, and passes it to dnsmasq with -C.
const openwrtConfDir = "/var/etc"

// dnsmasqShortWithArg lists the short options that take an argument in dnsmasq 2.90's getopt
// string (`strings /usr/sbin/dnsmasq`); "-kx PATH" is read as -k then -x PATH, like dnsmasq does.
const dnsmasqShortWithArg = "rmpclstiugaxSCATHQIBFGOMXVUjPJWY2467803"

// ErrManyDnsmasq: the pid file is unusable and /proc holds more than one dnsmasq for the
// instance; none is signalled. An error wrapping it also wraps the pid file's own error
// (ErrNoPIDFile, ErrNotRunning or ErrNotDnsmasq).
var ErrManyDnsmasq = errors.New("several dnsmasq processes for one instance")

// Signaller sends SIGHUP to the dnsmasq whose pid is in PIDFile, after checking that the pid
// really is a dnsmasq process: a stale pid file may name a pid the kernel has given to
// another program, which must never receive the signal.
//
// When the pid file does not name a running dnsmasq (a jailed dnsmasq writes its pid in its
// own PID namespace, typically 1), Signaller looks through ProcRoot for the one dnsmasq
// process whose command line names PIDFile or, for an OpenWrt pid file
// dnsmasq.SECTION.pid, the config /var/etc/dnsmasq.conf.SECTION.
type Signaller struct {
	// PIDFile is dnsmasq's pid file, e.g. /var/run/dnsmasq/dnsmasq.cfg01411c.pid.
	PIDFile string
	// ProcRoot is where /proc is mounted; empty means "/proc". Tests point it at a fake tree.
	ProcRoot string
	// Kill sends sig to pid; nil means syscall.Kill. Tests record calls with it.
	Kill func(pid int, sig syscall.Signal) error

	// File is the servers-file, by the path dnsmasq's config names it. When set, Reload first
	// checks (CheckFile) that dnsmasq reads the file now at that path, and restarts dnsmasq
	// instead of signalling it when it reads another: a jailed dnsmasq whose file was
	// replaced. Empty: no check, Reload only signals.
	File string
	// InitScript is run as `InitScript restart` to restart dnsmasq; empty means
	// DefaultInitScript (/etc/init.d/dnsmasq).
	InitScript string
	// Restart restarts dnsmasq; nil runs InitScript. Tests record calls with it.
	Restart func() error
	// Logf reports a restart, one line each, and a check that could not be made; nil
	// discards them.
	Logf func(format string, args ...any)
}

// Reload sends SIGHUP to dnsmasq so that it re-reads its servers-file, and returns the pid it
// signalled. Errors wrap ErrNoPIDFile (missing, empty or garbage pid file), ErrNotRunning (no
// such process: a stale pid file) or ErrNotDnsmasq (a foreign process, left alone), and name
// the pid file and the pid; Check says when /proc is searched instead.
//
// With File set, a dnsmasq that does not read the file at File (CheckFile: a jail's mount of
// a file since replaced) is restarted through Restart or InitScript instead, which Logf
// reports in one line; Reload then returns the pid of the dnsmasq it restarted (the old one)
// and a nil error, or, when the
// restart failed, an error wrapping ErrStaleFile (no SIGHUP is sent: it could not help).
// When the check cannot be made, Logf says why (except when the daemon may not look into
// dnsmasq's root: a daemon that is not root cannot restart dnsmasq either) and dnsmasq is
// signalled as without File.
func (s Signaller) Reload() (int, error) {
	pid, err := s.Check()
	if err != nil {
		return pid, err
	}
	if s.File != "" {
		restarted, err := s.restartIfStale(pid)
		if restarted || err != nil {
			return pid, err
		}
	}
	if err := s.catchesHUP(pid); err != nil {
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

// ErrStarting: dnsmasq has not yet installed its SIGHUP handler (it was started a moment
// ago), so a SIGHUP would kill it, and procd would bring it back only 5 s later. It is not
// signalled; the caller retries on its next round, and a dnsmasq that is starting reads the
// servers-file anyway.
var ErrStarting = errors.New("dnsmasq is still starting")

// catchesHUP returns an error wrapping ErrStarting when /proc says pid does not catch SIGHUP
// yet (SigCgt in /proc/PID/status). When the status cannot be read, it says nothing.
func (s Signaller) catchesHUP(pid int) error {
	root := s.ProcRoot
	if root == "" {
		root = "/proc"
	}
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "status"))
	if err != nil {
		return nil
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		hex, ok := strings.CutPrefix(line, "SigCgt:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil || mask&(1<<(syscall.SIGHUP-1)) != 0 {
			return nil
		}
		return fmt.Errorf("%s: pid %d: %w: it does not catch SIGHUP yet, which would kill it; not signalled (retrying)", s.PIDFile, pid, ErrStarting)
	}
	return nil
}

// restartIfStale restarts dnsmasq when it does not read File; see Reload.
func (s Signaller) restartIfStale(pid int) (restarted bool, err error) {
	logf := s.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cerr := s.CheckFile(pid)
	switch {
	case cerr == nil:
		return false, nil
	case !errors.Is(cerr, ErrStaleFile):
		if !errors.Is(cerr, fs.ErrPermission) && !errors.Is(cerr, ErrNotRunning) { // the SIGHUP reports an exit
			logf("warning: %v; signalling dnsmasq anyway", cerr)
		}
		return false, nil
	}
	how := ""
	if s.Restart == nil {
		how = " (" + s.initScript() + " restart)"
	}
	if err := s.restart(); err != nil {
		return false, fmt.Errorf("%w; restarting dnsmasq so that it reads this file failed: %w", cerr, err)
	}
	logf("%v; restarted dnsmasq%s so that it reads this file", cerr, how)
	return true, nil
}

// Check finds the running dnsmasq of the instance without signalling it, and returns its pid.
// A pid file that names a live dnsmasq is used as it is. Otherwise (ErrNoPIDFile,
// ErrNotRunning, ErrNotDnsmasq) Check scans ProcRoot: exactly one dnsmasq of the instance
// (its children, which share its command line, do not count) is returned with a nil error;
// none leaves the pid file's error, saying so; several wrap ErrManyDnsmasq as well. On error
// the pid is the pid file's (0 when it is unusable).
func (s Signaller) Check() (int, error) {
	root := s.ProcRoot
	if root == "" {
		root = "/proc"
	}
	pid, err := s.checkPIDFile(root)
	if err == nil || !(errors.Is(err, ErrNoPIDFile) || errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNotDnsmasq)) {
		return pid, err
	}
	found, scanErr := scanProc(root, matchFor(s.PIDFile), maxProcEntries)
	if scanErr != nil {
		return pid, fmt.Errorf("%w; %w", err, scanErr)
	}
	return found, nil
}

// checkPIDFile is the fast path: the pid in the pid file, if it is a live dnsmasq.
func (s Signaller) checkPIDFile(root string) (int, error) {
	pid, err := readPIDFile(s.PIDFile)
	if err != nil {
		return 0, err
	}
	dir := filepath.Join(root, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return pid, fmt.Errorf("%s: pid %d: %w (no such process: stale pid file)", s.PIDFile, pid, ErrNotRunning)
	}
	if err != nil {
		return pid, fmt.Errorf("%s: pid %d: read process state: %w", s.PIDFile, pid, err)
	}
	if state, _ := procStat(stat); state == 'Z' {
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

// procStat returns the state letter and the parent pid of /proc/PID/stat
// ("PID (COMM) S PPID ..."); COMM may hold spaces and parentheses, so the fields follow the
// last ')'. The state is 0 and the parent -1 when stat is malformed.
func procStat(stat []byte) (state byte, ppid int) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, -1
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 1 || len(f[0]) != 1 {
		return 0, -1
	}
	ppid = -1
	if len(f) > 1 {
		if n, err := strconv.Atoi(f[1]); err == nil {
			ppid = n
		}
	}
	return f[0][0], ppid
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

// cmdlineMatch is what identifies one dnsmasq instance on its command line.
type cmdlineMatch struct {
	pidFile string // the pid file, cleaned
	conf    string // OpenWrt's config for the section, "" when the pid file is not dnsmasq.SECTION.pid
}

// matchFor derives the instance from its pid file: OpenWrt's init script starts section
// SECTION as `dnsmasq -C /var/etc/dnsmasq.conf.SECTION -k -x /var/run/dnsmasq/dnsmasq.SECTION.pid`,
// so a pid file named dnsmasq.SECTION.pid, wherever it is, also identifies that config.
func matchFor(pidFile string) cmdlineMatch {
	in := cmdlineMatch{pidFile: filepath.Clean(pidFile)}
	rest, isOpenWrt := strings.CutPrefix(filepath.Base(pidFile), "dnsmasq.")
	section, hasPid := strings.CutSuffix(rest, ".pid")
	if isOpenWrt && hasPid && isSectionName(section) {
		in.conf = openwrtConfDir + "/dnsmasq.conf." + section
	}
	return in
}

// isSectionName reports whether s can be a UCI section name: letters, digits and '_'.
func isSectionName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}

// String names the instance in errors.
func (in cmdlineMatch) String() string {
	if in.conf == "" {
		return "pid file " + in.pidFile
	}
	return "pid file " + in.pidFile + " or config " + in.conf
}

// matches reports whether argv is a dnsmasq command line of this instance: argv[0] is a file
// named dnsmasq (ujail, which procd names "dnsmasq" too and whose argv holds dnsmasq's after
// "--", is not) and its options name the pid file or the section's config.
func (in cmdlineMatch) matches(argv []string) bool {
	if len(argv) == 0 || filepath.Base(argv[0]) != "dnsmasq" {
		return false
	}
	pidFile, conf := dnsmasqOptions(argv[1:])
	return (pidFile != "" && filepath.Clean(pidFile) == in.pidFile) ||
		(in.conf != "" && conf != "" && filepath.Clean(conf) == in.conf)
}

// dnsmasqOptions returns the pid file and the config file that dnsmasq's command line args
// (without argv[0]) set, the way dnsmasq's getopt reads them: -x PATH, -xPATH, -kx PATH,
// --pid-file=PATH and the same for -C / --conf-file; the last one wins; "--" ends the options.
// --pid-file and --conf-file take an argument only after '=': dnsmasq 2.90 reads
// `--pid-file PATH` as "no pid file" followed by junk, and refuses to start.
func dnsmasqOptions(args []string) (pidFile, conf string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return pidFile, conf
		case strings.HasPrefix(a, "--"):
			name, value, _ := strings.Cut(a[2:], "=")
			switch name {
			case "pid-file":
				pidFile = value
			case "conf-file":
				conf = value
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				if !strings.ContainsRune(dnsmasqShortWithArg, rune(a[j])) {
					continue
				}
				value := a[j+1:]
				if value == "" && i+1 < len(args) {
					i++
					value = args[i]
				}
				switch a[j] {
				case 'x':
					pidFile = value
				case 'C':
					conf = value
				}
				break
			}
		}
	}
	return pidFile, conf
}

// procEntry is one process of the instance found in /proc.
type procEntry struct {
	pid, ppid int
	zombie    bool
}

// scanProc finds the one running dnsmasq of the instance in /proc, reading at most limit
// entries. A match whose parent is another match is a child dnsmasq forked for a TCP
// connection or as the DHCP script helper, with the same command line: it does not count.
func scanProc(root string, in cmdlineMatch, limit int) (int, error) {
	d, err := os.Open(root)
	if err != nil {
		return 0, fmt.Errorf("cannot look for the dnsmasq naming %s in %s: %w", in, root, err)
	}
	defer func() { _ = d.Close() }()
	var found []procEntry
	read := 0
	for {
		names, err := d.Readdirnames(procBatch)
		for _, name := range names {
			if read++; read > limit {
				return 0, fmt.Errorf("more than %d entries in %s: stopped looking for the dnsmasq naming %s; not signalled", limit, root, in)
			}
			pid, ok := parsePID(name)
			if !ok {
				continue
			}
			if p, ok := readInstanceProc(filepath.Join(root, name), in); ok {
				p.pid = pid
				found = append(found, p)
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && len(names) == 0) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("cannot look for the dnsmasq naming %s in %s: %w", in, root, err)
		}
	}
	var mains []int
	for _, p := range found {
		child := slices.ContainsFunc(found, func(q procEntry) bool { return q.pid == p.ppid })
		if !p.zombie && !child {
			mains = append(mains, p.pid)
		}
	}
	slices.Sort(mains)
	switch len(mains) {
	case 1:
		return mains[0], nil
	case 0:
		return 0, fmt.Errorf("no dnsmasq process naming %s in %s either", in, root)
	default:
		return 0, fmt.Errorf("%w: pids %s in %s all name %s; none signalled", ErrManyDnsmasq, joinInts(mains), root, in)
	}
}

// parsePID accepts a /proc entry name that is a pid greater than 1: never init, like the pid file.
func parsePID(name string) (int, bool) {
	if name == "" || strings.Trim(name, "0123456789") != "" {
		return 0, false
	}
	pid, err := strconv.Atoi(name)
	return pid, err == nil && pid > 1
}

// readInstanceProc reports whether the process in dir is a dnsmasq of the instance, with its
// parent and whether it is a zombie. Unreadable entries (the process exited meanwhile) are
// not matches.
func readInstanceProc(dir string, in cmdlineMatch) (procEntry, bool) {
	if name, err := processName(dir); err != nil || name != "dnsmasq" {
		return procEntry{}, false
	}
	argv, err := readCmdline(filepath.Join(dir, "cmdline"))
	if err != nil || !in.matches(argv) {
		return procEntry{}, false
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procEntry{}, false
	}
	state, ppid := procStat(stat)
	return procEntry{ppid: ppid, zombie: state == 'Z'}, state != 0
}

// readCmdline reads at most maxCmdline bytes of a NUL-separated argv. When it is cut, the
// last, partial argument is dropped: "/x.pid.old" cut to "/x.pid" must not match "/x.pid".
func readCmdline(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxCmdline+1))
	if err != nil {
		return nil, err
	}
	cut := len(b) > maxCmdline
	if cut {
		b = b[:maxCmdline]
	}
	argv := strings.Split(string(b), "\x00")
	if cut || argv[len(argv)-1] == "" {
		argv = argv[:len(argv)-1] // the partial argument, or the empty string after the final NUL
	}
	return argv, nil
}

// joinInts is "1, 2, 3".
func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
