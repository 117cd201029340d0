package dnsmasq

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrStaleFile: dnsmasq reads another file than the one at the servers-file's path, or none.
// With ujail, dnsmasq sees the servers-file through a bind mount of the inode the path had
// when it started; once the file is deleted, edited with `sed -i` or replaced by an editor's
// rename, the file at the path is a new inode that dnsmasq never reads again, whatever it is
// sent. Only a restart, which mounts the file anew, fixes that.
var ErrStaleFile = errors.New("dnsmasq does not read this file")

// DefaultInitScript is OpenWrt's init script for dnsmasq; `restart` stops every instance and
// starts it again, and procd's jail then mounts the servers-file now at the path.
const DefaultInitScript = "/etc/init.d/dnsmasq"

// maxLinks is how many symlinks a lookup inside dnsmasq's root follows, as Linux does
// (MAXSYMLINKS): more is a loop.
const maxLinks = 40

// restartTimeout bounds a restart through the init script: OpenWrt's dnsmasq restart took
// 0.44-0.56 s (FIELD-NOTES), and procd gives a stopping instance 5 s before it kills it, so
// 30 s is far past any restart that is going to finish. The script and whatever it started
// in its process group are then killed, and the watchdog's loop moves on.
const restartTimeout = 30 * time.Second

// initEnv is the environment of the init script: procd's PATH, nothing of the daemon's.
var initEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}

// CheckFile reports whether the dnsmasq process pid reads File: it compares the device and
// inode of File with those of File as dnsmasq sees it, under ProcRoot/PID/root (its root
// directory, inside its jail when it has one; symlinks resolve inside that root, as they do
// for dnsmasq); when dnsmasq has nothing at that path, File's real path (its symlinks
// resolved here) is looked up there too. Without a jail both are the same lookup, and the
// answer is nil.
//
// The error wraps ErrStaleFile when dnsmasq sees another file (the one the path had when it
// started) or no file at all at the path; any other error means the question could not be
// answered: File is missing here, or dnsmasq's root cannot be read (fs.ErrPermission when
// the daemon is not root and dnsmasq has dropped its privileges; ErrNotRunning when it has
// exited).
func (s Signaller) CheckFile(pid int) error {
	file := s.File
	if !filepath.IsAbs(file) {
		// syscall.Getwd, not filepath.Abs: its os.Getwd costs the mips binary 5 KB, and the
		// daemon's servers-file is always absolute.
		wd, err := syscall.Getwd()
		if err != nil {
			return fmt.Errorf("servers-file %s: %w", file, err)
		}
		file = filepath.Join(wd, file)
	}
	here, err := os.Stat(file)
	if err != nil {
		return fmt.Errorf("servers-file %s: cannot tell whether dnsmasq (pid %d) reads it: %w", file, pid, err)
	}
	procRoot := s.ProcRoot
	if procRoot == "" {
		procRoot = "/proc"
	}
	root := filepath.Join(procRoot, strconv.Itoa(pid), "root")
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("servers-file %s: cannot tell whether dnsmasq (pid %d) reads it: %w (it exited just now)", file, pid, ErrNotRunning)
	} else if err != nil {
		return fmt.Errorf("servers-file %s: cannot tell whether dnsmasq (pid %d) reads it: %w", file, pid, err)
	}
	there, err := statIn(root, file)
	if errors.Is(err, fs.ErrNotExist) {
		// dnsmasq's config may name the file by its real path (OpenWrt's /var is a symlink
		// to /tmp), which is all its jail mounts: look there too.
		if real, rerr := filepath.EvalSymlinks(file); rerr == nil && real != file {
			if fi, rerr := statIn(root, real); rerr == nil || !errors.Is(rerr, fs.ErrNotExist) {
				there, err = fi, rerr
			}
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("servers-file %s: %w: dnsmasq (pid %d) finds no file at that path in its root (%s)", file, ErrStaleFile, pid, root)
	}
	if err != nil {
		return fmt.Errorf("servers-file %s: cannot tell whether dnsmasq (pid %d) reads it: %w", file, pid, err)
	}
	hd, hi, ok1 := devIno(here)
	td, ti, ok2 := devIno(there)
	if !ok1 || !ok2 {
		return fmt.Errorf("servers-file %s: cannot tell whether dnsmasq (pid %d) reads it: no inode numbers", file, pid)
	}
	if hd != td || hi != ti {
		return fmt.Errorf("servers-file %s: %w: it was replaced (now inode %d on device %#x); dnsmasq (pid %d) still reads inode %d on device %#x, through its jail's mount",
			file, ErrStaleFile, hi, hd, pid, ti, td)
	}
	return nil
}

// devIno returns a file's device and inode numbers.
func devIno(fi fs.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true
}

// statIn stats the absolute path name as a process whose root directory is root sees it:
// every symlink on the way, an absolute one included, resolves inside root, and ".." stops
// at root. (openat2's RESOLVE_IN_ROOT does the same, but only from Linux 5.6; OpenWrt 21.02
// runs 5.4.) Mounts are crossed by the kernel, in the mount namespace that root belongs to.
func statIn(root, name string) (fs.FileInfo, error) {
	cur := "/" // resolved so far, inside root, without symlinks
	rest := name
	links := 0
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(strings.TrimLeft(rest, "/"), "/")
		switch part {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, part)
		fi, err := os.Lstat(root + next)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return nil, &fs.PathError{Op: "stat", Path: root + name, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(root + next)
		if err != nil {
			return nil, err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = target + "/" + rest
	}
	return os.Stat(root + cur)
}

// restart runs Restart, or `InitScript restart`.
func (s Signaller) restart() error {
	if s.Restart != nil {
		return s.Restart()
	}
	return runInit(s.initScript(), restartTimeout)
}

// initScript is InitScript or DefaultInitScript.
func (s Signaller) initScript() string {
	if s.InitScript == "" {
		return DefaultInitScript
	}
	return s.InitScript
}

// runInit runs `script restart` with syscall.ForkExec (the router binary does not link
// os/exec) in a process group of its own, in /, with stdin and stdout on /dev/null and
// stderr on the daemon's (procd logs it as daemon.err), and waits for it, at most timeout:
// then the group is killed.
func runInit(script string, timeout time.Duration) error {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("%s restart: %w", script, err)
	}
	defer func() { _ = devnull.Close() }()
	pid, err := syscall.ForkExec(script, []string{script, "restart"}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   initEnv,
		Files: []uintptr{devnull.Fd(), devnull.Fd(), os.Stderr.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return fmt.Errorf("%s restart: %w", script, err)
	}
	type result struct {
		ws  syscall.WaitStatus
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for {
			_, r.err = syscall.Wait4(pid, &r.ws, 0, nil)
			if r.err != syscall.EINTR {
				break
			}
		}
		done <- r
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-done:
	case <-timer.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the script and whatever it started in its group
		<-done
		return fmt.Errorf("%s restart: killed after %s", script, timeout)
	}
	switch {
	case r.err != nil:
		return fmt.Errorf("%s restart: wait: %w", script, r.err)
	case r.ws.Exited() && r.ws.ExitStatus() == 0:
		return nil
	case r.ws.Exited():
		return fmt.Errorf("%s restart: exit status %d", script, r.ws.ExitStatus())
	case r.ws.Signaled():
		return fmt.Errorf("%s restart: killed by %v", script, r.ws.Signal())
	default:
		return fmt.Errorf("%s restart: ended with status %#x", script, uint32(r.ws))
	}
}
