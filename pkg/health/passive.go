package health

import (
	"time"

	"github.com/nextdns-failover/nextdns-failover/pkg/passive"
)

// SeenFrom turns one upstream's passive counters into evidence: the replies that are not
// SERVFAIL or REFUSED are good answers, with the mean RTT of all replies; the runs (Silent,
// Failing) and LastReply are taken as they are.
func SeenFrom(s passive.Stats) Seen {
	var rtt time.Duration
	if s.Answered > 0 {
		rtt = s.RTTSum / time.Duration(s.Answered)
	}
	return Seen{
		Answered: max(0, s.Answered-s.ServFail-s.Refused), RTT: rtt,
		Silent: s.Silent, Failing: s.Failing, LastReply: s.LastReply,
	}
}
