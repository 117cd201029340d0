package linkip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const secretURL = "https://link-ip.nextdns.io/abc123/0123456789abcdef"

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{secretURL, "https://link-ip.nextdns.io/abc123/***"},
		{"https://link-ip.nextdns.io/abc123/0123456789abcdef/", "https://link-ip.nextdns.io/abc123/***"},
		{"https://link-ip.nextdns.io/abc123", "https://link-ip.nextdns.io/abc123"},
		{"https://link-ip.nextdns.io/abc123?key=s3cret", "https://link-ip.nextdns.io/abc123?***"},
		{"https://user:pw@example.com/a/b/c#frag", "https://***@example.com/a/***"},
		{"https://example.com", "https://example.com"},
		{"link-ip.nextdns.io/abc123/secret", "link-ip.nextdns.io/abc123/***"},
	} {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	msg := scrub("Downloading '"+secretURL+"' failed; token 0123456789abcdef rejected", secretURL)
	if strings.Contains(msg, "0123456789abcdef") || !strings.Contains(msg, "https://link-ip.nextdns.io/abc123/***") {
		t.Errorf("scrub: %s", msg)
	}
}

// fakeClock hands out timer channels the test fires by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers chan chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), timers: make(chan chan time.Time, 16)}
}
func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	if d != 30*time.Minute {
		panic(fmt.Sprintf("interval %s, want the 30m default", d))
	}
	ch := make(chan time.Time, 1)
	c.timers <- ch
	return ch
}

// TestKeeperCallsOnStartKickAndInterval: one call at start, one per Kick, one per interval;
// status keeps the last success; each distinct failure is logged once; the secret shows
// nowhere.
func TestKeeperCallsOnStartKickAndInterval(t *testing.T) {
	clock := newFakeClock()
	type result struct {
		out string
		err error
	}
	calls := make(chan []string)
	results := make(chan result)
	var logMu sync.Mutex
	var logs []string
	k := New(Config{
		URL:   secretURL,
		Now:   clock.Now,
		After: clock.After,
		Logf: func(f string, a ...any) {
			logMu.Lock()
			logs = append(logs, fmt.Sprintf(f, a...))
			logMu.Unlock()
		},
		Run: func(ctx context.Context, argv []string) ([]byte, error) {
			calls <- argv
			r := <-results
			return []byte(r.out), r.err
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()

	step := func(r result) chan time.Time {
		argv := <-calls
		if strings.Join(argv, " ") != "/bin/uclient-fetch -q -O - -T 10 "+secretURL {
			t.Fatalf("argv %q", argv)
		}
		results <- r
		return <-clock.timers // Run waits again: the call is recorded
	}
	step(result{out: "  linked to 192.0.2.7\n"})
	s := k.Snapshot()
	if s.Answer != "linked to 192.0.2.7" || !s.LastOK.Equal(clock.Now()) || s.LastError != "" || s.URL != "https://link-ip.nextdns.io/abc123/***" {
		t.Fatalf("after start: %+v", s)
	}
	okAt := clock.Now()

	clock.advance(time.Minute)
	k.Kick()
	k.Kick() // coalesced with the first
	step(result{err: errors.New("Connection error: 0123456789abcdef refused")})
	clock.advance(time.Minute)
	timer := step(result{err: errors.New("Connection error: 0123456789abcdef refused")})
	s = k.Snapshot()
	if !s.LastOK.Equal(okAt) || s.Answer != "linked to 192.0.2.7" || s.LastError != "Connection error: *** refused" || !s.Checked.Equal(clock.Now()) {
		t.Fatalf("after failures: %+v", s)
	}

	clock.advance(30 * time.Minute)
	timer <- clock.Now()
	step(result{err: errors.New("exit status 4: HTTP error 403")})
	clock.advance(30 * time.Minute)
	k.Kick()
	step(result{out: "OK"})

	cancel()
	k.Kick()
	<-done
	logMu.Lock()
	defer logMu.Unlock()
	want := []string{
		`link IP https://link-ip.nextdns.io/abc123/***: linked (answer "linked to 192.0.2.7")`,
		"warning: link IP https://link-ip.nextdns.io/abc123/***: Connection error: *** refused",
		"warning: link IP https://link-ip.nextdns.io/abc123/***: exit status 4: HTTP error 403",
		`link IP https://link-ip.nextdns.io/abc123/***: linked (answer "OK")`,
	}
	if strings.Join(logs, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs:\n%s\nwant:\n%s", strings.Join(logs, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range logs {
		if strings.Contains(l, "0123456789abcdef") {
			t.Errorf("secret in log: %s", l)
		}
	}
}

// TestMain lets the test binary stand in for uclient-fetch: with LINKIP_FAKE_FETCH set it
// GETs its last argument (a loopback URL) and prints the body, failing like uclient-fetch on
// an HTTP error.
func TestMain(m *testing.M) {
	if os.Getenv("LINKIP_FAKE_FETCH") == "1" {
		url := os.Args[len(os.Args)-1]
		if !strings.HasPrefix(url, "http://127.0.0.1:") {
			fmt.Fprintln(os.Stderr, "fake fetch: loopback only")
			os.Exit(1)
		}
		resp, err := http.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "Connection error:", err)
			os.Exit(4)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			fmt.Fprintf(os.Stderr, "HTTP error %d\n", resp.StatusCode)
			os.Exit(8)
		}
		_, _ = io.Copy(os.Stdout, resp.Body)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestProcessWithALocalFake: the real Runner runs a stand-in uclient-fetch script against an
// HTTP fake on 127.0.0.1: the answer, an HTTP error, an endless answer (capped) and a hang
// (killed after the timeout).
func TestProcessWithALocalFake(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abc123/0123456789abcdef":
			fmt.Fprint(w, "OK\n")
		case "/abc123/big":
			for range 1000 {
				fmt.Fprint(w, strings.Repeat("x", 1000))
			}
		default:
			http.Error(w, "no such link", http.StatusForbidden)
		}
	}))
	defer srv.Close()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fetch := filepath.Join(t.TempDir(), "uclient-fetch")
	script := "#!/bin/sh\nLINKIP_FAKE_FETCH=1 exec '" + self + "' \"$@\"\n"
	if err := os.WriteFile(fetch, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	run := Process(10*time.Second, maxAnswer)

	var logs []string
	k := New(Config{URL: srv.URL + "/abc123/0123456789abcdef", Fetch: fetch, Run: run, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	k.Once(context.Background())
	if s := k.Snapshot(); s.Answer != "OK" || s.LastOK.IsZero() || s.LastError != "" {
		t.Fatalf("snapshot %+v, logs %q", s, logs)
	}

	bad := New(Config{URL: srv.URL + "/abc123/wrongsecret", Fetch: fetch, Run: run, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
	bad.Once(context.Background())
	if s := bad.Snapshot(); s.LastError != "exit status 8: HTTP error 403" || !s.LastOK.IsZero() {
		t.Fatalf("snapshot %+v", s)
	}
	for _, l := range logs {
		if strings.Contains(l, "wrongsecret") || strings.Contains(l, "0123456789abcdef") {
			t.Errorf("secret in log: %s", l)
		}
	}

	out, err := run(context.Background(), []string{fetch, srv.URL + "/abc123/big"})
	if !errors.Is(err, ErrTooLong) || len(out) != maxAnswer {
		t.Errorf("big answer: %d bytes, %v", len(out), err)
	}

	hang := filepath.Join(t.TempDir(), "hang")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Process(200*time.Millisecond, maxAnswer)(context.Background(), []string{hang})
	if !errors.Is(err, ErrTimeout) || time.Since(start) > 5*time.Second {
		t.Errorf("hang: %v after %s", err, time.Since(start))
	}
}
