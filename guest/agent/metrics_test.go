package main

import (
	"os"
	"path/filepath"
	"testing"
)

func writeTemp(t *testing.T, text string) *os.File {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseMeminfo(t *testing.T) {
	total, available := parseMeminfo(writeTemp(t, "MemTotal:         500000 kB\nMemFree:  1 kB\nMemAvailable:     250000 kB\n"))
	if total != 500000*1024 || available != 250000*1024 {
		t.Fatalf("%d %d", total, available)
	}
}

func TestParseNetDevSkipsLoopback(t *testing.T) {
	text := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999     10    0    0    0     0          0         0   999999     10    0    0    0     0       0          0
  eth0: 1500      12    0    0    0     0          0         0     700       9    0    0    0     0       0          0
  eth1:   10       1    0    0    0     0          0         0      20       1    0    0    0     0       0          0
`
	rx, tx := parseNetDev(writeTemp(t, text))
	if rx != 1510 || tx != 720 {
		t.Fatalf("%d %d", rx, tx)
	}
}
