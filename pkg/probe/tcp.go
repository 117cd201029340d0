package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"time"
)

// exchangeTCP sends query over a new TCP connection to raddr with the 2-byte length prefix of
// RFC 1035 4.2.2 and reads one reply, all before deadline. The reply is at most 65535 bytes, as
// the prefix allows, and is allocated only after its length is known.
func exchangeTCP(ctx context.Context, d dialer, raddr netip.AddrPort, query []byte,
	id uint16, q question, deadline time.Time) (replyInfo, error) {
	budget := time.Until(deadline)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := d.dialTCP(raddr)
	if err != nil {
		return replyInfo{}, tcpError("tcp connect", err, budget)
	}
	defer conn.Close()
	// As for UDP: the cancel sets a past deadline, and checking ctx.Err() after setting ours
	// leaves no window where a cancel is missed.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		return replyInfo{}, tcpError("tcp connect", err, budget)
	}
	if err := ctx.Err(); err != nil {
		return replyInfo{}, tcpError("tcp connect", err, budget)
	}
	if err := awaitConnect(conn); err != nil {
		return replyInfo{}, tcpError("tcp connect", canceled(ctx, err), budget)
	}

	out := make([]byte, 2+len(query))
	binary.BigEndian.PutUint16(out, uint16(len(query)))
	copy(out[2:], query)
	if _, err := conn.Write(out); err != nil {
		return replyInfo{}, tcpError("tcp send", canceled(ctx, err), budget)
	}
	var prefix [2]byte
	if _, err := io.ReadFull(conn, prefix[:]); err != nil {
		return replyInfo{}, tcpError("tcp receive", canceled(ctx, err), budget)
	}
	n := binary.BigEndian.Uint16(prefix[:])
	if n == 0 {
		return replyInfo{}, newError("tcp: empty reply", ErrMalformed)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(conn, msg); err != nil {
		return replyInfo{}, tcpError("tcp receive", canceled(ctx, err), budget)
	}
	r, err := parseReply(msg, id, q)
	if err != nil {
		// One connection, one reply: there is nothing else to wait for.
		return replyInfo{}, newError("tcp: "+err.Error(), err)
	}
	return r, nil
}

// canceled returns ctx's error in place of err when err is the past deadline that the caller's
// cancel set, so that the result says canceled, not timed out.
func canceled(ctx context.Context, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return err
}
