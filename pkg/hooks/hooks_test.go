package hooks

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHookSeesTheEvent(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script := "echo \"$ACTION|$PREVIOUS_STATE|$REASON|$SERVERS\" >> " + out + "\n"
	if err := os.WriteFile(filepath.Join(dir, "10-record"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	r := New(dir, 5*time.Second, func(f string, a ...any) { mu.Lock(); logs = append(logs, f); mu.Unlock() })
	r.Fire("healthy", "failover", "all 2 NextDNS upstreams down", []string{"9.9.9.9", "45.90.28.0"})
	r.Fire("failover", "healthy", "back", []string{"45.90.28.0"})
	r.Close()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "failover|healthy|all 2 NextDNS upstreams down|9.9.9.9 45.90.28.0\nhealthy|failover|back|45.90.28.0\n"
	if string(b) != want {
		t.Errorf("hook recorded %q, want %q (logs %v)", b, want, logs)
	}
}

func TestSlowHookIsKilledAndNeverBlocks(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "slow"), []byte("sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	r := New(dir, 50*time.Millisecond, func(f string, a ...any) { mu.Lock(); logs = append(logs, f); mu.Unlock() })
	start := time.Now()
	for range queue + 5 {
		r.Fire("a", "b", "", nil) // never blocks, even with the queue full
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Fire blocked for %s", d)
	}
	r.Close() // the queued events each kill their hook after 50ms: bounded
	mu.Lock()
	defer mu.Unlock()
	joined := strings.Join(logs, "\n")
	if !strings.Contains(joined, "killed after") || !strings.Contains(joined, "dropped") {
		t.Errorf("logs: %s", joined)
	}
}
