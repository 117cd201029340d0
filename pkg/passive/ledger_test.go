package passive

import (
	"net/netip"
	"testing"
	"time"
)

var (
	upA = netip.MustParseAddrPort("192.0.2.1:53")
	upB = netip.MustParseAddrPort("[2001:db8::1]:53")
	upL = netip.MustParseAddrPort("127.0.0.1:5053")
	t0  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

const testTimeout = 2 * time.Second

// ms is t0 plus n milliseconds: the fake clock.
func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func q(at int, up netip.AddrPort, port, id uint16) Packet {
	return Packet{At: ms(at), Upstream: up, LocalPort: port, Query: true, ID: id}
}

func r(at int, up netip.AddrPort, port, id uint16, rcode uint8) Packet {
	return Packet{At: ms(at), Upstream: up, LocalPort: port, ID: id, Rcode: rcode}
}

// step is one event in a ledger scenario: a packet, or an Expire at a time.
type step struct {
	p      *Packet
	expire int // ms; used when p is nil
}

func pk(p Packet) step    { return step{p: &p} }
func expireAt(n int) step { return step{expire: n} }

func TestLedger(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		take  int     // ms
		want  []Stats // for upA, upB
	}{
		{
			name:  "query answered, RTT",
			steps: []step{pk(q(0, upA, 1000, 7)), pk(r(30, upA, 1000, 7, 0))},
			take:  100,
			want:  []Stats{{Sent: 1, Answered: 1, RTTSum: 30 * time.Millisecond, RTTMax: 30 * time.Millisecond, LastReply: ms(30)}, {}},
		},
		{
			name: "loopback duplicates counted once",
			steps: []step{
				pk(q(0, upA, 1000, 7)), pk(q(0, upA, 1000, 7)),
				pk(r(10, upA, 1000, 7, 0)), pk(r(10, upA, 1000, 7, 0)),
			},
			take: 100,
			want: []Stats{{Sent: 1, Answered: 1, RTTSum: 10 * time.Millisecond, RTTMax: 10 * time.Millisecond, LastReply: ms(10)}, {}},
		},
		{
			name:  "a duplicate query copy after the reply is not a new query",
			steps: []step{pk(q(0, upA, 1000, 7)), pk(r(1, upA, 1000, 7, 0)), pk(q(2, upA, 1000, 7))},
			take:  5000,
			want:  []Stats{{Sent: 1, Answered: 1, RTTSum: time.Millisecond, RTTMax: time.Millisecond, LastReply: ms(1)}, {}},
		},
		{
			name:  "unanswered after timeout grows Silent",
			steps: []step{pk(q(0, upA, 1000, 1)), pk(q(10, upA, 1001, 2)), expireAt(1999), expireAt(2005)},
			take:  2009,
			want:  []Stats{{Sent: 2, Unanswered: 1, Silent: 1}, {}},
		},
		{
			name:  "Take expires too",
			steps: []step{pk(q(0, upA, 1000, 1)), pk(q(10, upA, 1001, 2))},
			take:  2010,
			want:  []Stats{{Sent: 2, Unanswered: 2, Silent: 2}, {}},
		},
		{
			name: "a resend of a pending query is the same query, timed from the first copy",
			steps: []step{
				pk(q(0, upA, 1000, 1)), pk(q(1500, upA, 1000, 1)), expireAt(2000),
				pk(q(2500, upA, 1000, 1)), expireAt(4000),
			},
			take: 4000,
			want: []Stats{{Sent: 1, Unanswered: 1, Silent: 1}, {}},
		},
		{
			name: "a late reply resets Silent but is not Answered",
			steps: []step{
				pk(q(0, upA, 1000, 1)), pk(q(1, upA, 1001, 2)), expireAt(3000),
				pk(r(3100, upA, 1000, 1, 0)),
			},
			take: 3200,
			want: []Stats{{Sent: 2, Unanswered: 2, LastReply: ms(3100)}, {}},
		},
		{
			name: "any reply resets Silent",
			steps: []step{
				pk(q(0, upA, 1000, 1)), expireAt(2000),
				pk(q(2100, upA, 1001, 2)), pk(r(2110, upA, 1001, 2, 0)),
				pk(q(2200, upA, 1002, 3)),
			},
			take: 4300,
			want: []Stats{{Sent: 3, Answered: 1, Unanswered: 2, Silent: 1, RTTSum: 10 * time.Millisecond, RTTMax: 10 * time.Millisecond, LastReply: ms(2110)}, {}},
		},
		{
			name: "SERVFAIL and REFUSED run, other rcode resets",
			steps: []step{
				pk(q(0, upA, 1, 1)), pk(r(5, upA, 1, 1, 2)),
				pk(q(10, upA, 2, 2)), pk(r(15, upA, 2, 2, 5)),
				pk(q(20, upA, 3, 3)), pk(r(25, upA, 3, 3, 3)), // NXDOMAIN resets
				pk(q(30, upA, 4, 4)), pk(r(35, upA, 4, 4, 2)),
				pk(r(35, upA, 4, 4, 2)), // its duplicate
			},
			take: 100,
			want: []Stats{{Sent: 4, Answered: 4, ServFail: 2, Refused: 1, Failing: 1, RTTSum: 20 * time.Millisecond, RTTMax: 5 * time.Millisecond, LastReply: ms(35)}, {}},
		},
		{
			name: "upstreams kept apart, IPv6 too",
			steps: []step{
				pk(q(0, upA, 1000, 1)), pk(q(0, upB, 1000, 1)), pk(r(40, upB, 1000, 1, 0)),
			},
			take: 2000,
			want: []Stats{{Sent: 1, Unanswered: 1, Silent: 1}, {Sent: 1, Answered: 1, RTTSum: 40 * time.Millisecond, RTTMax: 40 * time.Millisecond, LastReply: ms(40)}},
		},
		{
			name:  "same port and ID over TCP is another query",
			steps: []step{pk(q(0, upA, 1000, 1)), pk(r(1, upA, 1000, 1, 0)), pk(Packet{At: ms(2), Upstream: upA, LocalPort: 1000, ID: 1, Query: true, TCP: true})},
			take:  10,
			want:  []Stats{{Sent: 2, Answered: 1, RTTSum: time.Millisecond, RTTMax: time.Millisecond, LastReply: ms(1)}, {}},
		},
		{
			name:  "a reply to an unseen query resets runs, counts nothing",
			steps: []step{pk(q(0, upA, 1, 1)), expireAt(2000), pk(r(2100, upA, 9, 9, 2)), pk(r(2100, upA, 9, 9, 2))},
			take:  2200,
			want:  []Stats{{Sent: 1, Unanswered: 1, Failing: 1, LastReply: ms(2100)}, {}},
		},
		{
			name:  "other addresses ignored; mapped and zoned upstream forms match",
			steps: []step{pk(q(0, netip.MustParseAddrPort("192.0.2.9:53"), 1, 1)), pk(q(0, netip.MustParseAddrPort("192.0.2.1:54"), 1, 1)), pk(q(0, netip.MustParseAddrPort("[::ffff:192.0.2.1]:53"), 2, 2))},
			take:  10,
			want:  []Stats{{Sent: 1}, {}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLedger([]netip.AddrPort{upA, upB}, testTimeout)
			for _, s := range tc.steps {
				if s.p != nil {
					l.Observe(*s.p)
				} else {
					l.Expire(ms(s.expire))
				}
			}
			got := l.Take(ms(tc.take))
			if len(got) != len(tc.want) {
				t.Fatalf("Take gave %d stats, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("upstream %d:\n got %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestTakeStartsANewWindowButKeepsRuns(t *testing.T) {
	l := NewLedger([]netip.AddrPort{upA}, testTimeout)
	l.Observe(q(0, upA, 1, 1))
	l.Observe(q(0, upA, 2, 2))
	l.Observe(r(5, upA, 2, 2, 2))
	l.Take(ms(2000))
	got := l.Take(ms(3000))
	want := Stats{Silent: 1, Failing: 1, LastReply: ms(5)}
	if got[0] != want {
		t.Errorf("second Take = %+v, want %+v", got[0], want)
	}
}

func TestDuplicateUpstreamsAndReload(t *testing.T) {
	l := NewLedger([]netip.AddrPort{upA, upL, upA}, testTimeout)
	l.Observe(q(0, upL, 1, 1))
	l.Observe(q(0, upA, 1, 1))
	l.Expire(ms(2000))
	if got := l.Take(ms(2000)); got[0].Silent != 1 || got[2].Silent != 1 || got[1].Silent != 1 {
		t.Fatalf("Take = %+v, want Silent 1 each (dup mirrors the first)", got)
	}
	l.Observe(q(2100, upA, 3, 3))
	// Reload: upL leaves, upB arrives first. upA keeps its run and its pending query.
	l.reset([]netip.AddrPort{upB, upA}, testTimeout)
	l.Observe(r(2150, upA, 3, 3, 0))
	got := l.Take(ms(2200))
	if got[0] != (Stats{}) {
		t.Errorf("new upstream: %+v, want zero", got[0])
	}
	want := Stats{Sent: 1, Answered: 1, RTTSum: 50 * time.Millisecond, RTTMax: 50 * time.Millisecond, LastReply: ms(2150)}
	if got[1] != want {
		t.Errorf("kept upstream: %+v, want %+v", got[1], want)
	}
}

func TestGrewAndPending(t *testing.T) {
	l := NewLedger([]netip.AddrPort{upA}, testTimeout)
	l.Observe(q(0, upA, 1, 1))
	l.Observe(q(0, upA, 1, 1))
	if l.grew || l.pendingCount() != 1 {
		t.Fatalf("grew=%v pending=%d, want false 1", l.grew, l.pendingCount())
	}
	if next := l.expire(ms(1000)); !next.Equal(ms(2000)) {
		t.Errorf("next deadline %v, want %v", next, ms(2000))
	}
	if next := l.expire(ms(2000)); !next.IsZero() || !l.grew || l.pendingCount() != 0 {
		t.Errorf("after timeout: next=%v grew=%v pending=%d", next, l.grew, l.pendingCount())
	}
	l.expire(ms(2000 + int(unansweredHold/time.Millisecond)))
	if len(l.entries) != 0 {
		t.Errorf("%d entries remembered after the hold, want 0", len(l.entries))
	}
}

func TestBoundedMemory(t *testing.T) {
	l := NewLedger([]netip.AddrPort{upA}, testTimeout)
	for i := range 3 * maxEntries {
		l.Observe(q(i/100, upA, uint16(i/65536+1), uint16(i)))
		if len(l.entries) > maxEntries {
			t.Fatalf("after %d queries: %d entries, cap %d", i+1, len(l.entries), maxEntries)
		}
	}
	if len(l.order) > 4*maxEntries+1 {
		t.Errorf("eviction queue holds %d keys", len(l.order))
	}
	// The newest survive, the oldest were forgotten, not counted unanswered.
	l.Observe(r(200, upA, 1, uint16(3*maxEntries-1), 0))
	got := l.Take(ms(200))[0]
	if got.Sent != 3*maxEntries || got.Answered != 1 || got.Unanswered != 0 || l.pendingCount() != maxEntries-1 {
		t.Errorf("Take = %+v pending %d", got, l.pendingCount())
	}
}

func BenchmarkLedger1000Queries(b *testing.B) {
	l := NewLedger([]netip.AddrPort{upA, upB}, testTimeout)
	b.ReportAllocs()
	for n := range b.N {
		base := n * 1000
		for i := range 1000 {
			at := base + i
			id := uint16(at)
			l.Observe(q(at, upA, 1000, id))
			l.Observe(q(at, upA, 1000, id))
			l.Observe(r(at, upA, 1000, id, 0))
			l.Observe(r(at, upA, 1000, id, 0))
		}
		l.Expire(ms(base + 1000))
	}
}

func TestLostPacketsDoNotGrowSilent(t *testing.T) {
	l := NewLedger([]netip.AddrPort{upA}, testTimeout)
	l.Observe(q(0, upA, 1, 1))
	l.lost() // the socket dropped packets while query 1 was pending
	l.Observe(q(10, upA, 2, 2))
	got := l.Take(ms(2100))[0]
	if got.Unanswered != 2 || got.Silent != 1 {
		t.Errorf("Take = %+v, want Unanswered 2, Silent 1 (only the query sent after the loss)", got)
	}
}
