package main

// Session tests against real host processes: the session runs over net.Pipe exactly as it
// runs over the virtio-serial port in the VM, minus the PID 1 setup.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type testHost struct {
	t        *testing.T
	c        net.Conn
	wmu      sync.Mutex
	in       chan Frame
	served   chan error
	shutdown chan struct{}
}

func newHost(t *testing.T, handshake bool) *testHost {
	return newHostWith(t, handshake, nil)
}

// newHostWith is newHost with a CONFIGURE handler.
func newHostWith(t *testing.T, handshake bool, configure func(*GuestConfig) error) *testHost {
	return newHostConfig(t, handshake, func(c *Config) { c.Configure = configure })
}

// newHostConfig is newHost with the session's Config adjusted by edit.
func newHostConfig(t *testing.T, handshake bool, edit func(*Config)) *testHost {
	hostSide, guestSide := net.Pipe()
	h := &testHost{t: t, c: hostSide, in: make(chan Frame, 4096), served: make(chan error, 1), shutdown: make(chan struct{}, 1)}
	cfg := Config{Agent: "test", Logf: t.Logf, Shutdown: func() { h.shutdown <- struct{}{} }}
	edit(&cfg)
	go func() { h.served <- Serve(guestSide, cfg); guestSide.Close() }()
	go func() {
		d := NewDecoder(hostSide)
		for {
			f, err := d.Next()
			if err != nil {
				close(h.in)
				return
			}
			h.in <- f
		}
	}()
	t.Cleanup(func() { hostSide.Close() })
	if handshake {
		h.sendJSON(tHello, 0, map[string]int{"version": 1})
		if f := h.next(); f.Type != tHelloAck || !strings.Contains(string(f.Payload), `"version":1`) {
			t.Fatalf("handshake: %d %s", f.Type, f.Payload)
		}
	}
	return h
}

func (h *testHost) send(typ uint8, stream uint32, p []byte) {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if _, err := h.c.Write(AppendFrame(nil, Frame{typ, stream, p})); err != nil {
		h.t.Fatal(err)
	}
}

func (h *testHost) sendJSON(typ uint8, stream uint32, v any) {
	b, _ := json.Marshal(v)
	h.send(typ, stream, b)
}

func (h *testHost) credit(stream uint32, ch byte, n int) {
	p := []byte{ch, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(p[1:], uint32(n))
	h.send(tCredit, stream, p)
}

func (h *testHost) next() Frame {
	h.t.Helper()
	select {
	case f, ok := <-h.in:
		if !ok {
			h.t.Fatal("connection closed")
		}
		return f
	case <-time.After(10 * time.Second):
		h.t.Fatal("timeout waiting for a frame")
	}
	return Frame{}
}

func (h *testHost) expectError(stream uint32, code string) {
	h.t.Helper()
	f := h.next()
	if f.Type != tError || f.Stream != stream || !strings.Contains(string(f.Payload), `"code":"`+code+`"`) {
		h.t.Fatalf("want ERROR %s on %d, got type %d stream %d %s", code, stream, f.Type, f.Stream, f.Payload)
	}
}

type execResult struct {
	pid            int
	stdout, stderr []byte
	exit           struct {
		ExitCode int  `json:"exitCode"`
		Signal   int  `json:"signal"`
		TimedOut bool `json:"timedOut"`
	}
	stdinCredit int
}

// run execs req on stream id, feeds stdin (respecting the window), grants output credit as
// it consumes, and checks the frame order rules: STARTED first, EOFs before EXIT.
func (h *testHost) run(id uint32, req map[string]any, stdin []byte, whileRunning func(pid int)) execResult {
	h.t.Helper()
	h.sendJSON(tExec, id, req)
	var r execResult
	f := h.next()
	if f.Type != tStarted || f.Stream != id {
		h.t.Fatalf("want STARTED, got %d %s", f.Type, f.Payload)
	}
	var st struct{ Pid int }
	json.Unmarshal(f.Payload, &st)
	r.pid = st.Pid
	credits := make(chan int, 4096)
	if stdin != nil {
		go func() {
			win := initialWindow
			for off := 0; off < len(stdin); {
				for win == 0 {
					win += <-credits
				}
				n := min(len(stdin)-off, maxDataChunk, win)
				h.send(tStdin, id, stdin[off:off+n])
				off, win = off+n, win-n
			}
			h.send(tStdinClose, id, nil)
		}()
	}
	if whileRunning != nil {
		whileRunning(r.pid)
	}
	eof := [3]bool{}
	for {
		f := h.next()
		if f.Stream != id {
			h.t.Fatalf("frame type %d on stream %d", f.Type, f.Stream)
		}
		switch f.Type {
		case tStdout, tStderr:
			ch := f.Type - 6
			if eof[ch] {
				h.t.Fatal("data after EOF")
			}
			if len(f.Payload) > maxDataChunk {
				h.t.Fatalf("chunk of %d bytes", len(f.Payload))
			}
			if len(f.Payload) == 0 {
				eof[ch] = true
			} else if ch == 1 {
				r.stdout = append(r.stdout, f.Payload...)
			} else {
				r.stderr = append(r.stderr, f.Payload...)
			}
			h.credit(id, ch, len(f.Payload))
		case tCredit:
			n := int(binary.BigEndian.Uint32(f.Payload[1:]))
			r.stdinCredit += n
			credits <- n
		case tExit:
			if !eof[1] || !eof[2] {
				h.t.Fatal("EXIT before both EOFs")
			}
			json.Unmarshal(f.Payload, &r.exit)
			return r
		default:
			h.t.Fatalf("unexpected frame %d %s", f.Type, f.Payload)
		}
	}
}

func min(a ...int) int {
	m := a[0]
	for _, v := range a[1:] {
		if v < m {
			m = v
		}
	}
	return m
}

func TestNotReadyBeforeHello(t *testing.T) {
	h := newHost(t, false)
	h.send(tPing, 0, []byte("x"))
	h.expectError(0, "not_ready")
	h.sendJSON(tExec, 1, map[string]any{"argv": []string{"true"}})
	h.expectError(1, "not_ready")
	h.send(tHello, 0, []byte(`{"version":7,"future":true}`))
	if f := h.next(); f.Type != tHelloAck || !strings.Contains(string(f.Payload), `"version":1`) {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
}

func TestBadMessagesKeepTheConnection(t *testing.T) {
	h := newHost(t, true)
	h.send(99, 0, nil)
	h.expectError(0, "bad_message")
	h.send(tExec, 3, []byte("{not json"))
	h.expectError(3, "bad_message")
	h.sendJSON(tExec, 3, map[string]any{"argv": []string{}})
	h.expectError(3, "bad_message")
	h.send(tCredit, 3, []byte{1})
	h.expectError(3, "bad_message")
	h.send(tSignal, 3, []byte(`{"signal":"x"}`))
	h.expectError(3, "bad_message")
	h.send(tStdout, 3, []byte("guest-only type"))
	h.expectError(3, "bad_message")
	h.send(tPing, 0, []byte("still alive"))
	if f := h.next(); f.Type != tPong || string(f.Payload) != "still alive" {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
}

func TestFramingErrorEndsSession(t *testing.T) {
	h := newHost(t, true)
	h.c.Write([]byte{0, 0, 0, 1})
	select {
	case err := <-h.served:
		if pe, ok := err.(*ProtocolError); !ok || pe.Kind != "short" {
			t.Fatalf("%v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
}

func TestExecOutputsAndExitCode(t *testing.T) {
	h := newHost(t, true)
	r := h.run(1, map[string]any{"argv": []string{"sh", "-c", "echo out; echo err >&2; exit 3"}}, nil, nil)
	if string(r.stdout) != "out\n" || string(r.stderr) != "err\n" || r.exit.ExitCode != 3 || r.exit.Signal != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestEnvCwdAndDefaultPath(t *testing.T) {
	h := newHost(t, true)
	r := h.run(1, map[string]any{"argv": []string{"env"}}, nil, nil)
	if string(r.stdout) != "PATH="+defaultPath+"\nHOME=/root\n" {
		t.Fatalf("default env: %q", r.stdout)
	}
	r = h.run(2, map[string]any{
		"argv": []string{"env"}, "env": [][]string{{"PATH", "/usr/bin:/bin"}, {"K", "V=1"}, {"HOME", "/h"}},
	}, nil, nil)
	if string(r.stdout) != "PATH=/usr/bin:/bin\nK=V=1\nHOME=/h\n" {
		t.Fatalf("env: %q", r.stdout)
	}
	r = h.run(3, map[string]any{"argv": []string{"pwd"}, "cwd": "/tmp"}, nil, nil)
	if string(r.stdout) != "/tmp\n" {
		t.Fatalf("cwd: %q", r.stdout)
	}
}

func TestSpawnFailed(t *testing.T) {
	h := newHost(t, true)
	h.sendJSON(tExec, 1, map[string]any{"argv": []string{"no-such-program-here"}})
	h.expectError(1, "spawn_failed")
	h.sendJSON(tExec, 2, map[string]any{"argv": []string{"true"}, "cwd": "/no/such/dir"})
	h.expectError(2, "spawn_failed")
	h.sendJSON(tExec, 3, map[string]any{"argv": []string{"/etc/hostname"}})
	h.expectError(3, "spawn_failed")
	// The stream ids of failed spawns stay usable and the session goes on.
	if r := h.run(1, map[string]any{"argv": []string{"true"}}, nil, nil); r.exit.ExitCode != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestSignalAndStreamInUse(t *testing.T) {
	h := newHost(t, true)
	r := h.run(5, map[string]any{"argv": []string{"sleep", "100"}}, nil, func(int) {
		h.sendJSON(tExec, 5, map[string]any{"argv": []string{"true"}})
		h.expectError(5, "stream_in_use")
		h.sendJSON(tSignal, 5, map[string]int{"signal": int(syscall.SIGTERM)})
	})
	if r.exit.ExitCode != 143 || r.exit.Signal != 15 || r.exit.TimedOut {
		t.Fatalf("%+v", r.exit)
	}
	h.sendJSON(tSignal, 5, map[string]int{"signal": 9}) // exited: ignored, no reply
	h.send(tPing, 0, nil)
	if f := h.next(); f.Type != tPong {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
}

func TestTimeoutKillsTheGroup(t *testing.T) {
	h := newHost(t, true)
	start := time.Now()
	// The grandchild holds stdout open: only a kill of the whole group lets EXIT come.
	r := h.run(1, map[string]any{"argv": []string{"sh", "-c", "sleep 100 & sleep 100"}, "timeoutMs": 200}, nil, nil)
	if !r.exit.TimedOut || r.exit.Signal != 9 || r.exit.ExitCode != 137 {
		t.Fatalf("%+v", r.exit)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestStdinRoundTrip(t *testing.T) {
	h := newHost(t, true)
	in := make([]byte, 3<<20+17)
	rand.Read(in)
	r := h.run(1, map[string]any{"argv": []string{"cat"}}, in, nil)
	if !bytes.Equal(r.stdout, in) || r.exit.ExitCode != 0 {
		t.Fatalf("round trip: %d bytes back, exit %+v", len(r.stdout), r.exit)
	}
	if r.stdinCredit != len(in) {
		t.Fatalf("stdin credit %d, sent %d", r.stdinCredit, len(in))
	}
}

func TestFlowControlStallsTheProcess(t *testing.T) {
	h := newHost(t, true)
	const total = 2 << 20
	h.sendJSON(tExec, 1, map[string]any{"argv": []string{"sh", "-c", "head -c 2097152 /dev/zero; echo done >&2"}})
	if f := h.next(); f.Type != tStarted {
		t.Fatalf("%d", f.Type)
	}
	got := 0
	deadline := time.After(700 * time.Millisecond)
wait:
	for {
		select {
		case f := <-h.in:
			if f.Type != tStdout {
				t.Fatalf("type %d %q while stalled", f.Type, f.Payload)
			}
			got += len(f.Payload)
		case <-deadline:
			break wait
		}
	}
	if got != initialWindow {
		t.Fatalf("sent %d bytes without credit, want exactly the window %d", got, initialWindow)
	}
	h.credit(1, 1, got)
	var stderr []byte
	for {
		f := h.next()
		switch f.Type {
		case tStdout:
			got += len(f.Payload)
			h.credit(1, 1, len(f.Payload))
		case tStderr:
			stderr = append(stderr, f.Payload...)
		case tExit:
			if got != total || string(stderr) != "done\n" {
				t.Fatalf("got %d bytes, stderr %q", got, stderr)
			}
			return
		}
	}
}

func TestSessionEndKillsProcesses(t *testing.T) {
	h := newHost(t, true)
	h.sendJSON(tExec, 1, map[string]any{"argv": []string{"sleep", "100"}})
	f := h.next()
	var st struct{ Pid int }
	json.Unmarshal(f.Payload, &st)
	h.c.Close()
	for i := 0; syscall.Kill(st.Pid, 0) == nil; i++ {
		if i > 500 {
			t.Fatal("process survived its session")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestShutdownAndPing(t *testing.T) {
	h := newHost(t, true)
	h.send(tPing, 0, bytes.Repeat([]byte("p"), 65))
	h.expectError(0, "bad_message")
	h.send(tShutdown, 0, nil)
	select {
	case <-h.shutdown:
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown")
	}
}

func TestMetricsReportsTheKernelsCounters(t *testing.T) {
	h := newHost(t, true)
	h.send(tMetrics, 0, []byte("m1"))
	f := h.next()
	var m metricsReport
	if f.Type != tMetricsReport || json.Unmarshal(f.Payload, &m) != nil {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
	// The test runs on the host, so these are the host kernel's counters: present and sane.
	if m.Token != "m1" || m.MemoryTotalBytes == 0 || m.MemoryAvailableBytes == 0 || m.MemoryAvailableBytes > m.MemoryTotalBytes {
		t.Fatalf("%+v", m)
	}
	h.send(tMetrics, 0, bytes.Repeat([]byte("x"), 65))
	h.expectError(0, "bad_message")
}

func TestTtyExecRunsOnASizedTerminal(t *testing.T) {
	h := newHost(t, true)
	r := h.run(1, map[string]any{"argv": []string{"sh", "-c", "tty; stty size; echo oops >&2"}, "tty": map[string]int{"rows": 30, "cols": 100}}, nil, nil)
	out := string(r.stdout)
	if r.exit.ExitCode != 0 || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "30 100\r\n") || !strings.Contains(out, "oops") || len(r.stderr) != 0 {
		t.Fatalf("exit %+v stdout %q stderr %q", r.exit, out, r.stderr)
	}
}

func TestTtyResize(t *testing.T) {
	h := newHost(t, true)
	r := h.run(2, map[string]any{"argv": []string{"sh", "-c", "read line; stty size"}, "tty": map[string]int{"rows": 24, "cols": 80}}, nil, func(pid int) {
		h.sendJSON(tResize, 2, map[string]int{"rows": 50, "cols": 132})
		h.send(tStdin, 2, []byte("go\n"))
	})
	if out := string(r.stdout); !strings.Contains(out, "50 132\r\n") {
		t.Fatalf("stdout %q", out)
	}
	h.sendJSON(tResize, 2, map[string]int{"rows": 0, "cols": 80})
	h.expectError(2, "bad_message")
}

func TestTtyStdinCloseIsEndOfInput(t *testing.T) {
	h := newHost(t, true)
	r := h.run(3, map[string]any{"argv": []string{"sh", "-c", "cat; echo rc=$?"}, "tty": map[string]int{"rows": 24, "cols": 80}}, []byte("typed\n"), nil)
	if r.exit.ExitCode != 0 || strings.Count(string(r.stdout), "typed") != 2 || !strings.Contains(string(r.stdout), "rc=0") {
		t.Fatalf("exit %+v stdout %q", r.exit, r.stdout)
	}
}

// Two channels at once (virtio-serial and vsock): the sessions share only the reaper and the
// guest. Each gets the statuses of its own processes, a FREEZE holds only its own channel, and
// the end of one session leaves the other's processes running.
func TestTwoSessionsAtOnce(t *testing.T) {
	a, b := newHost(t, true), newHost(t, true)
	execs := func(h *testHost, name string, first uint32, done chan<- struct{}) {
		for i := 0; i < 10; i++ {
			id := first + uint32(i)
			r := h.run(id, map[string]any{"argv": []string{"sh", "-c", "echo $0; exit $1", name, strconv.Itoa(i)}}, nil, nil)
			if string(r.stdout) != name+"\n" || r.exit.ExitCode != i {
				t.Errorf("%s exec %d: %q %+v", name, i, r.stdout, r.exit)
			}
		}
		done <- struct{}{}
	}
	done := make(chan struct{}, 2)
	go execs(a, "a", 1, done)
	go execs(b, "b", 1, done)
	<-done
	<-done
	if t.Failed() {
		t.FailNow()
	}

	a.sendJSON(tExec, 20, map[string]any{"argv": []string{"sleep", "100"}})
	var st struct{ Pid int }
	if f := a.next(); f.Type != tStarted || json.Unmarshal(f.Payload, &st) != nil {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
	a.send(tFreeze, 0, nil)
	if f := a.next(); f.Type != tFrozen {
		t.Fatalf("want FROZEN, got %d", f.Type)
	}
	if r := b.run(20, map[string]any{"argv": []string{"echo", "b"}}, nil, nil); string(r.stdout) != "b\n" {
		t.Fatalf("session b while a is frozen: %q", r.stdout)
	}
	b.c.Close()
	select {
	case <-b.served:
	case <-time.After(5 * time.Second):
		t.Fatal("session b did not end")
	}
	if syscall.Kill(st.Pid, 0) != nil {
		t.Fatal("the end of session b killed a process of session a")
	}
	a.sendJSON(tThaw, 0, map[string]any{"timeMs": 0})
	if f := a.next(); f.Type != tThawed {
		t.Fatalf("want THAWED, got %d", f.Type)
	}
	a.sendJSON(tSignal, 20, map[string]any{"signal": 9})
	for {
		if f := a.next(); f.Type == tExit {
			if !strings.Contains(string(f.Payload), `"signal":9`) {
				t.Fatalf("EXIT %s", f.Payload)
			}
			return
		}
	}
}
