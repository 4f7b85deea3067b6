package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// After FROZEN nothing is written until THAW: output produced meanwhile waits, then flows.
func TestFreezeHoldsOutputUntilThaw(t *testing.T) {
	h := newHost(t, true)
	h.sendJSON(tExec, 1, map[string]any{"argv": []string{"sh", "-c", "read x; echo out-$x"}})
	if f := h.next(); f.Type != tStarted {
		t.Fatalf("%d", f.Type)
	}
	h.send(tFreeze, 0, nil)
	if f := h.next(); f.Type != tFrozen || f.Stream != 0 {
		t.Fatalf("want FROZEN, got %d %s", f.Type, f.Payload)
	}
	h.send(tStdin, 1, []byte("1\n"))
	select {
	case f := <-h.in:
		t.Fatalf("frame %d %q written while frozen", f.Type, f.Payload)
	case <-time.After(300 * time.Millisecond):
	}
	h.sendJSON(tThaw, 0, map[string]any{"timeMs": 0})
	var out []byte
	for thawed, exited := false, false; !thawed || !exited; {
		f := h.next()
		switch f.Type {
		case tThawed:
			thawed = true
		case tStdout:
			out = append(out, f.Payload...)
			h.credit(1, 1, len(f.Payload))
		case tExit:
			exited = true
		}
	}
	if string(out) != "out-1\n" {
		t.Fatalf("stdout %q", out)
	}
}

// A fresh host: the old streams are detached (the process runs on, its output is dropped,
// nothing blocks it), and THAWED numbers the new host's streams above the old ones.
func TestFreshThawDetachesOldStreams(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "done")
	h := newHost(t, true)
	// 4 MiB of output, far past the window: only a detached pump that drains lets it finish.
	h.sendJSON(tExec, 7, map[string]any{"argv": []string{"sh", "-c", "sleep 0.3; head -c 4194304 /dev/zero; touch " + marker}})
	if f := h.next(); f.Type != tStarted {
		t.Fatalf("%d", f.Type)
	}
	h.send(tFreeze, 0, nil)
	if f := h.next(); f.Type != tFrozen {
		t.Fatalf("want FROZEN, got %d", f.Type)
	}
	h.sendJSON(tThaw, 0, map[string]any{"timeMs": 1, "fresh": true, "entropy": "AAEC"})
	var thawed struct{ NextStream uint32 }
	for {
		f := h.next()
		if f.Type == tThawed {
			json.Unmarshal(f.Payload, &thawed)
			break
		}
	}
	if thawed.NextStream != 8 {
		t.Fatalf("nextStream %d, want 8", thawed.NextStream)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if i > 500 {
			t.Fatal("the detached process never finished its output")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The old id is free again, and nothing of the old stream reaches the new host after THAWED.
	r := h.run(7, map[string]any{"argv": []string{"echo", "new"}}, nil, nil)
	if string(r.stdout) != "new\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
}

func TestThawHookGetsTheRequest(t *testing.T) {
	got := make(chan ThawRequest, 1)
	h := newHostConfig(t, true, func(c *Config) { c.Thaw = func(r *ThawRequest) error { got <- *r; return nil } })
	h.sendJSON(tThaw, 0, map[string]any{"timeMs": 42, "fresh": true, "entropy": "AAEC"})
	if f := h.next(); f.Type != tThawed {
		t.Fatalf("%d", f.Type)
	}
	r := <-got
	if r.TimeMs != 42 || !r.Fresh || string(r.Entropy) != "\x00\x01\x02" {
		t.Fatalf("%+v", r)
	}
}

func TestBadFreezeAndThaw(t *testing.T) {
	h := newHost(t, true)
	h.send(tThaw, 0, []byte("nope"))
	h.expectError(0, "bad_message")
	h.send(tFreeze, 0, nil)
	if f := h.next(); f.Type != tFrozen {
		t.Fatalf("%d", f.Type)
	}
}

func TestRenewMachineID(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "machine-id")
	if err := renewMachineID(file); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("created a machine-id where there was none")
	}
	old := "0123456789abcdef0123456789abcdef\n"
	os.WriteFile(file, []byte(old), 0o444)
	if err := renewMachineID(file); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if string(b) == old || !regexp.MustCompile(`^[0-9a-f]{32}\n$`).Match(b) {
		t.Fatalf("machine-id %q", b)
	}
	// A symlink planted there is not written through.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("x"), 0o644)
	os.Remove(file)
	os.Symlink(target, file)
	renewMachineID(file)
	if b, _ := os.ReadFile(target); string(b) != "x" {
		t.Fatal("wrote through a symlink")
	}
}

func TestAddEntropyNeedsNoRootToFailCleanly(t *testing.T) {
	err := addEntropy([]byte{1, 2, 3})
	if os.Geteuid() == 0 && err != nil {
		t.Fatalf("as root: %v", err)
	}
	if os.Geteuid() != 0 && err != syscall.EPERM {
		t.Fatalf("as a user: %v, want EPERM", err)
	}
}
