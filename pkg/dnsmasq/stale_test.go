package dnsmasq

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// jailLayout builds dnsmasq's root directory, root, around the servers-file file of the host.
type jailLayout func(t *testing.T, root, file string)

// hardLink puts the host's file (the same inode) at name: what ujail's bind mount shows
// while the file has not been replaced.
func hardLink(t *testing.T, file, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(file, name); err != nil {
		t.Fatal(err)
	}
}

// oldCopy puts another inode with the same content at name: what ujail's bind mount shows
// once the file at the path has been replaced.
func oldCopy(t *testing.T, file, name string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, name, string(b))
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// TestReloadRestartsDnsmasqReadingAReplacedFile runs Reload over a fake /proc of an OpenWrt
// router whose dnsmasq is jailed: its pid file says 1 and its root is proc/1174/root.
func TestReloadRestartsDnsmasqReadingAReplacedFile(t *testing.T) {
	tests := []struct {
		name        string
		jail        jailLayout
		noFile      bool // File left empty: the zero value, no check
		hostMissing bool // the servers-file is not at its path here
		viaSymlink  bool // File names the servers-file through a symlinked folder (OpenWrt's /var)
		restartErr  error
		killErr     error // what the SIGHUP returns
		wantRestart bool
		wantSIGHUP  bool
		wantErr     error
		wantLog     []string // each must appear in the one line logged; nil = nothing logged
	}{
		{name: "no jail: dnsmasq's root is ours", wantSIGHUP: true,
			jail: func(t *testing.T, root, file string) { symlink(t, "/", root) }},
		{name: "jail mounts the file at the path", wantSIGHUP: true,
			jail: func(t *testing.T, root, file string) { hardLink(t, file, root+file) }},
		{name: "jail mounts the replaced file", wantRestart: true,
			jail:    func(t *testing.T, root, file string) { oldCopy(t, file, root+file) },
			wantLog: []string{"was replaced", "still reads inode", "pid 1174", "restarted dnsmasq"}},
		{name: "jail has no file at the path", wantRestart: true,
			jail:    func(t *testing.T, root, file string) { os.MkdirAll(root, 0o755) },
			wantLog: []string{"finds no file at that path", "pid 1174", "restarted dnsmasq"}},
		{name: "an absolute symlink resolves inside the jail", wantSIGHUP: true,
			jail: func(t *testing.T, root, file string) {
				symlink(t, "/elsewhere", root+filepath.Dir(file))
				hardLink(t, file, root+"/elsewhere/"+filepath.Base(file))
			}},
		{name: "an absolute symlink to the replaced file inside the jail", wantRestart: true,
			jail: func(t *testing.T, root, file string) {
				symlink(t, "/elsewhere", root+filepath.Dir(file))
				oldCopy(t, file, root+"/elsewhere/"+filepath.Base(file))
			},
			wantLog: []string{"was replaced"}},
		{name: "a relative symlink with .. above the root stays inside", wantSIGHUP: true,
			jail: func(t *testing.T, root, file string) {
				symlink(t, strings.Repeat("../", 20)+"elsewhere", root+filepath.Dir(file))
				hardLink(t, file, root+"/elsewhere/"+filepath.Base(file))
			}},
		{name: "the jail has the file by its real path only", viaSymlink: true, wantSIGHUP: true,
			jail: func(t *testing.T, root, file string) {
				real, err := filepath.EvalSymlinks(file)
				if err != nil || real == file {
					t.Fatalf("test setup: %s resolves to %s, %v", file, real, err)
				}
				hardLink(t, file, root+real)
			}},
		{name: "the jail has the replaced file by its real path only", viaSymlink: true, wantRestart: true,
			jail: func(t *testing.T, root, file string) {
				real, _ := filepath.EvalSymlinks(file)
				oldCopy(t, file, root+real)
			},
			wantLog: []string{"was replaced"}},
		{name: "a symlink loop: cannot tell, signalled", wantSIGHUP: true,
			jail:    func(t *testing.T, root, file string) { symlink(t, filepath.Base(file), root+file) },
			wantLog: []string{"warning: ", "cannot tell", "too many", "signalling dnsmasq anyway"}},
		{name: "file missing here: cannot tell, signalled", hostMissing: true, wantSIGHUP: true,
			jail:    func(t *testing.T, root, file string) { os.MkdirAll(root, 0o755) },
			wantLog: []string{"warning: ", "cannot tell", "no such file"}},
		{name: "dnsmasq exited: nothing logged, the signal says so", killErr: syscall.ESRCH, wantErr: ErrNotRunning, wantSIGHUP: true,
			jail: func(t *testing.T, root, file string) {}},
		{name: "restart fails: not signalled, error", wantRestart: true, restartErr: errors.New("exit status 1"),
			jail:    func(t *testing.T, root, file string) { oldCopy(t, file, root+file) },
			wantErr: ErrStaleFile},
		{name: "zero value: no check", noFile: true, wantSIGHUP: true,
			jail: func(t *testing.T, root, file string) { oldCopy(t, file, root+file) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := t.TempDir()
			file := filepath.Join(t.TempDir(), "nextdns-failover", "servers.conf")
			if tt.viaSymlink {
				tmp := t.TempDir()
				if err := os.Mkdir(filepath.Join(tmp, "tmp"), 0o755); err != nil {
					t.Fatal(err)
				}
				symlink(t, filepath.Join(tmp, "tmp"), filepath.Join(tmp, "var"))
				file = filepath.Join(tmp, "var", "servers.conf")
			}
			if _, err := WriteInPlace(file, []byte("server=45.90.28.0\n")); err != nil {
				t.Fatal(err)
			}
			proc := t.TempDir()
			writeProcTree(t, proc, run, openwrtJailed)
			writeFile(t, filepath.Join(run, "dnsmasq.cfg01411c.pid"), "1\n")
			tt.jail(t, filepath.Join(proc, "1174", "root"), file)
			if tt.hostMissing {
				if err := os.Remove(file); err != nil {
					t.Fatal(err)
				}
			}

			var signalled []int
			var restarts int
			var logs []string
			s := Signaller{
				PIDFile:  filepath.Join(run, "dnsmasq.cfg01411c.pid"),
				ProcRoot: proc,
				Kill: func(pid int, sig syscall.Signal) error {
					signalled = append(signalled, pid)
					return tt.killErr
				},
				File:    file,
				Restart: func() error { restarts++; return tt.restartErr },
				Logf:    func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) },
			}
			if tt.noFile {
				s.File = ""
			}
			pid, err := s.Reload()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Reload = %d, %v; want error %v", pid, err, tt.wantErr)
			}
			if pid != 1174 {
				t.Errorf("Reload returned pid %d, want 1174", pid)
			}
			if got := restarts > 0; got != tt.wantRestart || restarts > 1 {
				t.Errorf("restarted %d times, want restart %v", restarts, tt.wantRestart)
			}
			if want := []int{1174}; tt.wantSIGHUP != slices.Equal(signalled, want) || (!tt.wantSIGHUP && len(signalled) > 0) {
				t.Errorf("signalled %v, want SIGHUP %v", signalled, tt.wantSIGHUP)
			}
			if tt.wantErr != nil {
				want := []string{file, "restarting dnsmasq", "exit status 1"}
				if tt.restartErr == nil {
					want = nil
				}
				for _, msg := range want {
					if !strings.Contains(err.Error(), msg) {
						t.Errorf("error %q does not say %q", err, msg)
					}
				}
				if len(logs) > 0 {
					t.Errorf("logged %q for a failed restart; the caller logs the error", logs)
				}
				return
			}
			if tt.wantLog == nil {
				if len(logs) > 0 {
					t.Errorf("logged %q, want nothing", logs)
				}
				return
			}
			if len(logs) != 1 {
				t.Fatalf("logged %q, want one line", logs)
			}
			for _, msg := range append(tt.wantLog, file) {
				if !strings.Contains(logs[0], msg) {
					t.Errorf("log %q does not say %q", logs[0], msg)
				}
			}
		})
	}
}

// TestCheckFileRealProc looks at this test's own process through the real /proc: it shares
// our mount namespace, so it reads the file at the path, before and after a replacement.
func TestCheckFileRealProc(t *testing.T) {
	file := filepath.Join(t.TempDir(), "servers.conf")
	writeFile(t, file, "server=192.0.2.1\n")
	s := Signaller{File: file}
	if err := s.CheckFile(os.Getpid()); err != nil {
		t.Fatalf("CheckFile on our own process: %v", err)
	}
	tmp := file + ".tmp"
	writeFile(t, tmp, "server=192.0.2.2\n")
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFile(os.Getpid()); err != nil {
		t.Fatalf("CheckFile after a rename in our own mount namespace: %v", err)
	}
}

// initScript writes an executable stand-in for /etc/init.d/dnsmasq that runs body.
func initScript(t *testing.T, body string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "dnsmasq")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

func TestRunInit(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	t.Run("restart", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "ran")
		script := initScript(t, `printf '%s|%s|%s|%s\n' "$0" "$1" "$PATH" "$(pwd)" > `+out)
		if err := runInit(script, restartTimeout); err != nil {
			t.Fatalf("runInit: %v", err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("the script did not run: %v", err)
		}
		if want := script + "|restart|/usr/sbin:/usr/bin:/sbin:/bin|/\n"; string(b) != want {
			t.Errorf("the script saw %q, want %q", b, want)
		}
	})
	t.Run("exit status", func(t *testing.T) {
		script := initScript(t, "exit 3")
		if err := runInit(script, restartTimeout); err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), script) {
			t.Fatalf("runInit = %v, want exit status 3 naming the script", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "dnsmasq")
		if err := runInit(script, restartTimeout); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("runInit = %v, want ENOENT", err)
		}
	})
	t.Run("hangs", func(t *testing.T) {
		// The script stops itself: it never ends on its own, with no clock involved.
		script := initScript(t, "kill -STOP $$")
		start := time.Now()
		err := runInit(script, 50*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "killed after 50ms") {
			t.Fatalf("runInit = %v, want killed after 50ms", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("runInit took %s", d)
		}
	})
	t.Run("InitScript", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "ran")
		s := Signaller{InitScript: initScript(t, `echo "$1" >> `+out)}
		if err := s.restart(); err != nil {
			t.Fatalf("restart: %v", err)
		}
		if b, _ := os.ReadFile(out); string(b) != "restart\n" {
			t.Errorf("the init script ran with %q, want restart", b)
		}
	})
}
