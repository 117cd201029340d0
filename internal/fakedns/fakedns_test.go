package fakedns

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// shortTimeout bounds a query expected to be answered at once, and how long a query
// expected to be dropped is waited for. Loopback answers in well under a millisecond.
const shortTimeout = 300 * time.Millisecond

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ask(s *Server, proto, name string, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: proto, Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := c.Exchange(m, s.Addr().String())
	return r, err
}

func TestBehaviours(t *testing.T) {
	tests := []struct {
		name      string
		set       func(*Server)
		wantReply bool
		wantRcode int
		wantA     string
	}{
		{"answers A with its address", (*Server).Answer, true, dns.RcodeSuccess, "192.0.2.1"},
		{"drop never replies", (*Server).Drop, false, 0, ""},
		{"total loss never replies", func(s *Server) { s.DropShare(1) }, false, 0, ""},
		{"servfail", (*Server).ServFail, true, dns.RcodeServerFailure, ""},
		{"refused", (*Server).Refused, true, dns.RcodeRefused, ""},
	}
	for _, tc := range tests {
		for _, proto := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				s := start(t)
				tc.set(s)
				r, err := ask(s, proto, "q.example.", shortTimeout)
				if !tc.wantReply {
					if err == nil {
						t.Fatalf("got a reply %v, want none", r)
					}
					if got := s.Name("q.example").Received; got != 1 {
						t.Errorf("received %d, want 1", got)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if r.Rcode != tc.wantRcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.wantRcode])
				}
				if tc.wantA != "" {
					if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != tc.wantA {
						t.Errorf("answer %v, want A %s", r.Answer, tc.wantA)
					}
				}
				if got := s.Name("Q.EXAMPLE."); got.Received != 1 || got.Answered != 1 {
					t.Errorf("name stats %+v, want 1 received and answered", got)
				}
			})
		}
	}
}

func TestSetAnswerAddrTellsServersApart(t *testing.T) {
	s := start(t)
	s.SetAnswerAddr(netip.MustParseAddr("192.0.2.77"))
	r, err := ask(s, "udp", "who.example", shortTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Answer[0].(*dns.A).A.String(); got != "192.0.2.77" {
		t.Errorf("A %s, want 192.0.2.77", got)
	}
}

func TestDropShareLosesAboutThatShare(t *testing.T) {
	s := start(t)
	s.DropShare(0.5)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ask(s, "udp", fmt.Sprintf("n%d.example", i), shortTimeout)
		}()
	}
	wg.Wait()
	c := s.Snapshot()
	if c.Received != n || c.Dropped+c.Answered != n {
		t.Fatalf("counts %d received, %d dropped, %d answered; want %d received, all dropped or answered", c.Received, c.Dropped, c.Answered, n)
	}
	// 50% of 200 has a standard deviation of about 7: 60..140 is far outside chance.
	if c.Dropped < 60 || c.Dropped > 140 {
		t.Errorf("dropped %d of %d at share 0.5", c.Dropped, n)
	}
}

func TestDelayDoesNotBlockOtherQueries(t *testing.T) {
	s := start(t)
	s.Delay(2 * time.Second)
	slow := make(chan error, 1)
	go func() {
		_, err := ask(s, "udp", "slow.example", 5*time.Second)
		slow <- err
	}()
	// wait until the slow query is inside the server, then make it fast for the next one
	deadline := time.Now().Add(5 * time.Second)
	for s.Name("slow.example").Received == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow query never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Delay(0)
	if _, err := ask(s, "udp", "fast.example", time.Second); err != nil {
		t.Fatalf("fast query behind a delayed one: %v", err)
	}
	if s.Name("slow.example").Answered != 0 {
		t.Error("delayed reply sent before the fast one")
	}
	if err := <-slow; err != nil {
		t.Errorf("delayed query: %v", err)
	}
}

func TestResetAndSnapshot(t *testing.T) {
	s := start(t)
	s.KeepTimes(func(n string) bool { return n == "a.example." })
	for _, n := range []string{"a.example", "a.example", "b.example"} {
		if _, err := ask(s, "udp", n, shortTimeout); err != nil {
			t.Fatal(err)
		}
	}
	snap := s.Snapshot()
	got := s.Reset()
	if got.Received != 3 || got.Names["a.example."].Received != 2 || got.Names["b.example."].Answered != 1 {
		t.Errorf("before reset: %+v", got)
	}
	if ts := snap.Names["a.example."].Times; len(ts) != 2 || ts[1].Before(ts[0]) || !ts[0].Equal(snap.Names["a.example."].First) {
		t.Errorf("arrival times of a.example: %v", ts)
	}
	if ts := snap.Names["b.example."].Times; len(ts) != 0 {
		t.Errorf("arrival times kept for b.example, which KeepTimes does not accept: %v", ts)
	}
	if after := s.Snapshot(); after.Received != 0 || len(after.Names) != 0 {
		t.Errorf("after reset: %+v", after)
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	_, err := Start("192.0.2.1:53")
	if !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("err %v, want ErrNotLoopback", err)
	}
}

func TestUpstreamNotation(t *testing.T) {
	s, err := Start("127.0.0.3:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := fmt.Sprintf("127.0.0.3#%d", s.Addr().Port())
	if s.Upstream() != want {
		t.Errorf("Upstream %q, want %q", s.Upstream(), want)
	}
}
