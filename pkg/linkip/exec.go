package linkip

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner runs argv and returns its standard output; err says why it failed (exit status,
// timeout, the program's own message). The daemon's runner is Process.
type Runner func(ctx context.Context, argv []string) ([]byte, error)

// ErrTooLong: the program printed more than the answer cap.
var ErrTooLong = errors.New("answer too long")

// ErrTimeout: the program did not finish in time and was killed.
var ErrTimeout = errors.New("timed out")

// Process is a Runner that starts argv[0] directly (no shell) with os.StartProcess, not
// os/exec (which adds about 200 KB to a MIPS binary), in its own process group, with stdin on
// /dev/null. It reads at most max bytes of standard output and 512 bytes of standard error,
// and kills the group after timeout or when the output runs over.
func Process(timeout time.Duration, max int) Runner {
	return func(ctx context.Context, argv []string) ([]byte, error) {
		if len(argv) == 0 {
			return nil, errors.New("no program")
		}
		devnull, err := os.Open(os.DevNull)
		if err != nil {
			return nil, err
		}
		defer devnull.Close()
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer outR.Close()
		errR, errW, err := os.Pipe()
		if err != nil {
			outW.Close()
			return nil, err
		}
		defer errR.Close()
		p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
			Dir:   "/",
			Env:   []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
			Files: []*os.File{devnull, outW, errW},
			Sys:   &syscall.SysProcAttr{Setpgid: true},
		})
		outW.Close()
		errW.Close()
		if err != nil {
			return nil, err
		}
		var once sync.Once
		var why error
		kill := func(e error) {
			once.Do(func() {
				why = e
				_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
			})
		}
		timer := time.AfterFunc(timeout, func() { kill(ErrTimeout) })
		defer timer.Stop()
		stop := context.AfterFunc(ctx, func() { kill(ctx.Err()) })
		defer stop()

		var stderr []byte
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			stderr = drain(errR, 512, nil)
		}()
		// The rest is read too, until the group is gone.
		out := drain(outR, max+1, func() { kill(ErrTooLong) })
		if len(out) > max {
			out = out[:max]
		}
		st, werr := p.Wait()
		wg.Wait()
		timer.Stop()
		once.Do(func() {}) // no kill after this point; why is settled
		set := why
		msg := strings.Join(strings.Fields(string(stderr)), " ")
		switch {
		case set != nil:
			return out, set
		case werr != nil:
			return out, werr
		case !st.Success():
			if msg != "" {
				return out, fmt.Errorf("%s: %s", st, msg)
			}
			return out, errors.New(st.String())
		}
		return out, nil
	}
}

// drain reads f to its end and returns the first keep bytes; full, if not nil, is called as
// soon as keep bytes are in. It reads with a plain loop, not io.Copy, which links sendfile,
// splice and copy_file_range into the binary (with bytes.Buffer, 55 KB of the mips binary's
// code, tables and data, measured).
func drain(f *os.File, keep int, full func()) []byte {
	var kept []byte
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if room := keep - len(kept); room > 0 {
			kept = append(kept, buf[:min(n, room)]...)
			if len(kept) == keep && full != nil {
				full()
			}
		}
		if err != nil {
			return kept
		}
	}
}
