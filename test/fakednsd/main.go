// Command fakednsd runs one fake upstream DNS server (internal/fakedns) on a loopback address
// until it is sent SIGTERM or SIGINT, for scripts that cannot hold a Go test helper, such as
// scripts/qemu-smoke.sh. It answers every A query with 192.0.2.1 and writes its address in
// dnsmasq's notation ("127.0.0.1#40123") to the -ready file once it serves.
//
//	fakednsd [-addr 127.0.0.1:0] -ready FILE
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nextdns-failover/nextdns-failover/internal/fakedns"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address and port to serve on (0: any free port)")
	ready := flag.String("ready", "", "file to write the server's address to once it serves")
	flag.Parse()
	srv, err := fakedns.Start(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakednsd:", err)
		os.Exit(1)
	}
	defer srv.Close()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if *ready != "" {
		tmp := *ready + ".tmp"
		if err := os.WriteFile(tmp, []byte(srv.Upstream()+"\n"), 0o644); err == nil {
			err = os.Rename(tmp, *ready)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fakednsd:", err)
			os.Exit(1)
		}
	}
	<-stop
	c := srv.Snapshot()
	fmt.Fprintf(os.Stderr, "fakednsd: %s: received %d queries, answered %d\n", srv.Upstream(), c.Received, c.Answered)
}
