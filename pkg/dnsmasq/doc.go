// Package dnsmasq owns nextdns-failover's side of dnsmasq: it plans and renders the
// servers-file, finds and audits the dnsmasq instance in OpenWrt's dhcp config, finds the
// server= lines dnsmasq reads ahead of the servers-file (ScanConf, ServersAhead) and the local
// NextDNS forwarders users already run (FindForwarders), rewrites the servers-file in place and
// signals dnsmasq to re-read it.
//
// Plan, Render, FindInstance and Audit are pure; WriteInPlace and Signaller are the thin I/O
// shell, with their file system and /proc injectable for tests.
package dnsmasq
