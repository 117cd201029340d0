package probe

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// question is what a probe asks and what a reply must echo.
type question = dnsmessage.Question

// replyInfo is what a matching reply tells us.
type replyInfo struct {
	rcode     dnsmessage.RCode
	truncated bool
}

// newID returns a query ID an off-path attacker cannot predict. math/rand/v2's global source is
// ChaCha8 seeded from the operating system's entropy. crypto/rand would add about 130 KB to the
// mips binary (measured), twice what this whole package costs.
func newID() uint16 {
	return uint16(rand.Uint32())
}

// buildQuery packs an A/IN query with RD set and no EDNS for name.
func buildQuery(name string, id uint16) ([]byte, question, error) {
	if name == "" || name == "." {
		return nil, question{}, newError("empty probe name", ErrName)
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, question{}, newError("probe name "+strconv.Quote(name)+" is too long", ErrName, err)
	}
	q := question{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	// Exactly the query's size: 12 bytes of header, the name (one length byte per label, the
	// last one for the root), 4 bytes of type and class.
	size := 12 + len(name) + 1 + 4
	b := dnsmessage.NewBuilder(make([]byte, 0, size), dnsmessage.Header{ID: id, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		return nil, question{}, newError("building query", ErrName, err)
	}
	if err := b.Question(q); err != nil {
		return nil, question{}, newError("probe name "+strconv.Quote(name)+" is not a valid DNS name", ErrName, err)
	}
	msg, err := b.Finish()
	if err != nil {
		return nil, question{}, newError("building query", ErrName, err)
	}
	return msg, q, nil
}

// parseReply checks that msg is a well-formed reply to the query (id, q). It returns an error
// wrapping ErrMalformed when msg cannot be parsed and ErrMismatch when it parses but is not the
// reply to this query: another ID, no QR bit, another opcode, or not exactly our question echoed
// (the name compared without regard to ASCII case, as servers may echo 0x20-mixed case).
//
// It walks every record to catch a cut-off message without keeping any of them, so its
// allocation does not depend on the input.
func parseReply(msg []byte, id uint16, q question) (replyInfo, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return replyInfo{}, ErrMalformed
	}
	got, err := p.Question()
	noQuestion := errors.Is(err, dnsmessage.ErrSectionDone)
	if err != nil && !noQuestion {
		return replyInfo{}, ErrMalformed
	}
	extra := false
	if !noQuestion {
		if err := p.SkipQuestion(); err == nil {
			extra = true
			if err := p.SkipAllQuestions(); err != nil {
				return replyInfo{}, ErrMalformed
			}
		} else if !errors.Is(err, dnsmessage.ErrSectionDone) {
			return replyInfo{}, ErrMalformed
		}
	}
	// A truncated reply may legitimately be cut anywhere after the question: it is only a
	// signal to retry over TCP, so its records are not checked.
	if !h.Truncated {
		if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil || p.SkipAllAdditionals() != nil {
			return replyInfo{}, ErrMalformed
		}
	}
	if h.ID != id || !h.Response || h.OpCode != 0 || noQuestion || extra ||
		got.Type != q.Type || got.Class != q.Class || !sameName(got.Name, q.Name) {
		return replyInfo{}, ErrMismatch
	}
	return replyInfo{rcode: h.RCode, truncated: h.Truncated}, nil
}

// sameName compares two names, ignoring ASCII case only (RFC 4343).
func sameName(a, b dnsmessage.Name) bool {
	if a.Length != b.Length {
		return false
	}
	for i := range int(a.Length) {
		x, y := a.Data[i], b.Data[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// rcodeName is the conventional mnemonic of an rcode, as dig prints it.
func rcodeName(rc dnsmessage.RCode) string {
	switch rc {
	case dnsmessage.RCodeSuccess:
		return "NOERROR"
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	case 6:
		return "YXDOMAIN"
	case 7:
		return "YXRRSET"
	case 8:
		return "NXRRSET"
	case 9:
		return "NOTAUTH"
	case 10:
		return "NOTZONE"
	case 11:
		return "DSOTYPENI"
	}
	return "RCODE" + strconv.Itoa(int(rc))
}

// decide turns the rcode of a matching reply into the result: NOERROR and NXDOMAIN mean the
// server resolves (NXDOMAIN is still an answer from a working resolver); anything else is down.
func decide(res Result, rc dnsmessage.RCode) Result {
	res.Rcode = rcodeName(rc)
	switch rc {
	case dnsmessage.RCodeSuccess, dnsmessage.RCodeNameError:
		res.Up = true
	default:
		res.Err = newError(res.Rcode, ErrRcode)
	}
	return res
}
