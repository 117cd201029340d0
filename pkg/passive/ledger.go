// Package passive watches dnsmasq's own queries to its upstreams on the wire and turns them into
// per-upstream observations: how many distinct queries went out, how many were answered, how
// many went unanswered past a timeout, SERVFAIL and REFUSED replies, round-trip times.
//
// A packet socket (AF_PACKET, cooked) with a classic BPF filter admits only DNS packets between
// this router and the configured upstreams, cut to the IP, UDP/TCP and 12-byte DNS headers; no
// query names or answers ever reach the program, and nothing is logged per query. The Ledger
// that matches queries to replies is pure and takes the time from each Packet, so it is tested
// with plain values; the Watcher is the thin shell around the socket.
package passive

import (
	"net/netip"
	"time"
)

// Stats are one upstream's passive observations.
type Stats struct {
	Sent, Answered, Unanswered int           // window counters (since the previous Take): distinct queries
	ServFail, Refused          int           // window counters
	RTTSum, RTTMax             time.Duration // window, over Answered
	Silent                     int           // run: distinct queries unanswered past timeout since its last reply (reply resets; Take does not)
	Failing                    int           // run: SERVFAIL/REFUSED replies in a row (any other reply resets; Take does not)
	LastReply                  time.Time     // when the latest reply from this upstream was seen (zero: none yet)
}

// Packet is what the program reads from one admitted packet: headers only.
type Packet struct {
	At        time.Time      // when it was read
	Upstream  netip.AddrPort // the upstream it went to or came from
	LocalPort uint16         // this router's port (the query's source port, the reply's destination port)
	Query     bool           // true: to the upstream; false: a reply from it
	ID        uint16         // the DNS message ID
	Rcode     uint8          // the DNS header's 4-bit rcode (replies)
	TCP       bool           // carried over TCP (a retry after a truncated UDP answer)
}

// DNS rcodes the ledger counts.
const (
	rcodeServFail = 2
	rcodeRefused  = 5
)

// maxEntries caps the queries (pending, and recently settled ones kept to swallow duplicates)
// the ledger remembers: 4096 entries of about 64 bytes, a fixed ~300 KB at worst on a router.
// A household router sends tens of queries a second at peak; 4096 within one timeout (a few
// seconds) is a flood. At the cap the oldest entry goes first: it is the least likely to be
// answered still and its evidence the stalest. An evicted query that was still pending is
// forgotten, neither answered nor unanswered: a flood must not turn into evidence that an
// upstream went silent (a false failover), and losing a little evidence only delays a
// decision the active probes still make.
const maxEntries = 4096

// answeredHold is how long a settled (answered) query is remembered so that the second copy of
// its query or reply is recognised as a duplicate: loopback shows every packet twice
// (OUTGOING then HOST) microseconds apart, a bridge or a VLAN device a few microseconds to
// milliseconds apart. One second covers that with a wide margin, and a new query reusing the
// same local port and ID within a second is a 1-in-65536 coincidence per reused port.
const answeredHold = time.Second

// unansweredHold is how long a query counted Unanswered is remembered. dnsmasq resends a
// query to the same upstream with the same source port and ID when the client resends (musl
// after 2.5 s, glibc after 5 s) and keeps a forwarded query for 10 s (dnsmasq's TIMEOUT).
// Remembering it that long means a resend is not counted as a second distinct query, and a
// reply that comes late is recognised as such.
const unansweredHold = 10 * time.Second

// state is where a remembered query stands.
type state uint8

const (
	pending    state = iota // sent, no reply yet, timeout not passed
	answered                // a reply was seen
	unanswered              // the timeout passed with no reply
)

// key identifies one query: dnsmasq picks a random source port and a random ID for each
// forwarded query, so (upstream, local port, ID) names it; TCP and UDP are kept apart.
type key struct {
	up   int // index of the upstream in the ledger's list (first occurrence)
	port uint16
	id   uint16
	tcp  bool
}

// entry is one remembered query.
type entry struct {
	sent    time.Time // first time the query was seen
	settled time.Time // when it was answered or counted unanswered
	seq     uint64    // insertion number, to match the eviction queue
	st      state
	doubt   bool // packets were lost while it was pending: its reply may have been one
}

// Ledger matches dnsmasq's queries to its upstreams with their replies and keeps per-upstream
// Stats. It is pure: the time comes from each Packet and from the callers of Expire and Take.
// It is not safe for concurrent use.
//
// Decisions where the wire is ambiguous:
//   - The same (upstream, local port, ID) seen again while its query is pending, or within
//     answeredHold/unansweredHold after it settled, is the same query: loopback and bridge
//     duplicates, and dnsmasq's resends of a client's retry, are counted once. The timeout runs
//     from the first copy, and an RTT is measured from it (what the client waited).
//   - A reply after its query was counted Unanswered is a late reply: it resets Silent and
//     sets LastReply (the upstream is slow, not gone) but does not count as Answered again.
//   - A reply to a query never seen (the watcher started after it was sent) still resets
//     Silent, updates Failing and LastReply, but counts in no window counter.
type Ledger struct {
	ups     []netip.AddrPort       // as configured (normalized)
	index   map[netip.AddrPort]int // upstream -> first index in ups
	timeout time.Duration
	stats   []Stats // per first index
	entries map[key]*entry
	order   []key    // insertion order, for eviction at maxEntries; may hold stale keys
	orderAt []uint64 // seq of each key in order
	seq     uint64
	npend   int  // entries in state pending
	grew    bool // some Silent or Failing grew since the watcher last looked
}

// NewLedger returns a Ledger for upstreams (in config order) that counts a query unanswered
// once timeout has passed since it was first seen.
func NewLedger(upstreams []netip.AddrPort, timeout time.Duration) *Ledger {
	l := &Ledger{entries: map[key]*entry{}}
	l.reset(upstreams, timeout)
	return l
}

// normalize makes an upstream address comparable with what the wire shows: an IPv4-mapped
// IPv6 address is the IPv4 address, and a zone is not on the wire.
// (Not WithZone: it links package unique, 40 KB on mips, measured.)
func normalize(ap netip.AddrPort) netip.AddrPort {
	a := ap.Addr().Unmap()
	if a.Zone() != "" {
		a = netip.AddrFrom16(a.As16())
	}
	return netip.AddrPortFrom(a, ap.Port())
}

// reset replaces the upstream list and timeout, keeping the stats and remembered queries of
// upstreams still in the list (a reload does not wipe a run in progress).
func (l *Ledger) reset(upstreams []netip.AddrPort, timeout time.Duration) {
	oldIndex, oldStats := l.index, l.stats
	l.ups = make([]netip.AddrPort, len(upstreams))
	l.index = make(map[netip.AddrPort]int, len(upstreams))
	l.stats = make([]Stats, len(upstreams))
	l.timeout = timeout
	remap := map[int]int{}
	for i, u := range upstreams {
		u = normalize(u)
		l.ups[i] = u
		if _, dup := l.index[u]; dup {
			continue
		}
		l.index[u] = i
		if j, ok := oldIndex[u]; ok {
			l.stats[i] = oldStats[j]
			remap[j] = i
		}
	}
	if len(remap) == len(oldIndex) && sameOrder(remap) {
		return
	}
	old := l.entries
	l.entries = make(map[key]*entry, len(old))
	l.order, l.orderAt, l.npend = nil, nil, 0
	for k, e := range old {
		i, ok := remap[k.up]
		if !ok {
			continue
		}
		k.up = i
		l.insert(k, e)
	}
}

// sameOrder reports whether remap keeps every index where it was.
func sameOrder(remap map[int]int) bool {
	for j, i := range remap {
		if i != j {
			return false
		}
	}
	return true
}

// insert remembers e under k, evicting the oldest entries at maxEntries.
func (l *Ledger) insert(k key, e *entry) {
	for len(l.entries) >= maxEntries && len(l.order) > 0 {
		ok, seq := l.order[0], l.orderAt[0]
		l.order, l.orderAt = l.order[1:], l.orderAt[1:]
		if old, found := l.entries[ok]; found && old.seq == seq {
			l.remove(ok, old)
		}
	}
	l.seq++
	e.seq = l.seq
	l.entries[k] = e
	if e.st == pending {
		l.npend++
	}
	l.order = append(l.order, k)
	l.orderAt = append(l.orderAt, e.seq)
	if len(l.order) > 4*maxEntries {
		l.compact()
	}
}

// remove forgets the entry e under k.
func (l *Ledger) remove(k key, e *entry) {
	if e.st == pending {
		l.npend--
	}
	delete(l.entries, k)
}

// compact drops stale keys from the eviction queue (it keeps growing otherwise, since Expire
// deletes entries without touching the queue).
func (l *Ledger) compact() {
	n := 0
	for i, k := range l.order {
		if e, ok := l.entries[k]; ok && e.seq == l.orderAt[i] {
			l.order[n], l.orderAt[n] = k, l.orderAt[i]
			n++
		}
	}
	l.order = append([]key(nil), l.order[:n]...)
	l.orderAt = append([]uint64(nil), l.orderAt[:n]...)
}

// Observe records one packet. Packets for an upstream not in the list are ignored.
func (l *Ledger) Observe(p Packet) {
	up, ok := l.index[normalize(p.Upstream)]
	if !ok {
		return
	}
	k := key{up: up, port: p.LocalPort, id: p.ID, tcp: p.TCP}
	e := l.entries[k]
	if p.Query {
		if e != nil {
			return // a duplicate copy or a resend of a query already remembered
		}
		l.insert(k, &entry{sent: p.At, st: pending})
		l.stats[up].Sent++
		return
	}
	s := &l.stats[up]
	if e != nil && e.st == answered {
		return // a duplicate copy of a reply already counted
	}
	s.LastReply = p.At
	s.Silent = 0
	switch p.Rcode {
	case rcodeServFail, rcodeRefused:
		s.Failing++
		l.grew = true
	default:
		s.Failing = 0
	}
	switch {
	case e == nil:
		// A reply to a query never seen: remember it so its duplicate is not counted again.
		l.insert(k, &entry{sent: p.At, settled: p.At, st: answered})
		return
	case e.st == unanswered:
		// A late reply: already counted Unanswered.
		e.st, e.settled = answered, p.At
		return
	}
	l.npend--
	e.st, e.settled = answered, p.At
	s.Answered++
	switch p.Rcode {
	case rcodeServFail:
		s.ServFail++
	case rcodeRefused:
		s.Refused++
	}
	rtt := p.At.Sub(e.sent)
	if rtt < 0 {
		rtt = 0
	}
	s.RTTSum += rtt
	s.RTTMax = max(s.RTTMax, rtt)
}

// Expire counts every query pending for timeout or longer as Unanswered (growing its
// upstream's Silent run) and forgets settled queries held long enough.
func (l *Ledger) Expire(now time.Time) {
	l.expire(now)
}

// expire is Expire that also returns when the earliest still-pending query will time out
// (zero when none is pending), for the watcher's timer.
func (l *Ledger) expire(now time.Time) (next time.Time) {
	for k, e := range l.entries {
		switch e.st {
		case pending:
			deadline := e.sent.Add(l.timeout)
			if now.Before(deadline) {
				if next.IsZero() || deadline.Before(next) {
					next = deadline
				}
				continue
			}
			l.npend--
			e.st, e.settled = unanswered, now
			s := &l.stats[k.up]
			s.Unanswered++
			if !e.doubt {
				s.Silent++
				l.grew = true
			}
		case answered:
			if !now.Before(e.settled.Add(answeredHold)) {
				delete(l.entries, k)
			}
		case unanswered:
			if !now.Before(e.settled.Add(unansweredHold)) {
				delete(l.entries, k)
			}
		}
	}
	if len(l.entries) == 0 {
		l.order, l.orderAt = l.order[:0], l.orderAt[:0]
	}
	return next
}

// lost records that the socket dropped packets: every query pending now may have lost its
// reply, so when it times out it counts as Unanswered but does not grow Silent. A socket that
// cannot keep up must not make an upstream look silent.
func (l *Ledger) lost() {
	for _, e := range l.entries {
		if e.st == pending {
			e.doubt = true
		}
	}
}

// Take runs Expire(now) and returns every upstream's Stats in config order, then starts a new
// window: the window counters restart from zero, the runs (Silent, Failing) and LastReply
// carry on.
func (l *Ledger) Take(now time.Time) []Stats {
	l.Expire(now)
	out := make([]Stats, len(l.ups))
	for i, u := range l.ups {
		out[i] = l.stats[l.index[u]]
	}
	for i := range l.stats {
		s := &l.stats[i]
		*s = Stats{Silent: s.Silent, Failing: s.Failing, LastReply: s.LastReply}
	}
	return out
}

// pendingCount is how many queries await a reply.
func (l *Ledger) pendingCount() int { return l.npend }
