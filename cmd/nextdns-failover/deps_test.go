package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRouterBinaryStaysSmall fails when the router binary links a package we keep out for its
// size on MIPS (measured with -trimpath -ldflags='-s -w', GOARCH=mips GOMIPS=softfloat):
// github.com/miekg/dns (+3.3 MB), net (+460 KB), encoding/json (+390 KB), os/exec (+200 KB).
func TestRouterBinaryStaysSmall(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "GOOS=linux", "GOARCH=mips", "GOMIPS=softfloat", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string]bool{}
	for _, d := range strings.Fields(string(out)) {
		deps[d] = true
	}
	if !deps["golang.org/x/net/dns/dnsmessage"] {
		t.Fatal("go list output does not look like this binary's dependencies")
	}
	for _, banned := range []string{"github.com/miekg/dns", "net", "encoding/json", "os/exec"} {
		if deps[banned] {
			t.Errorf("the router binary links %s", banned)
		}
	}
}
