package main

// Fuzz targets for everything the agent decodes from the host: the frame reader, a whole
// session fed raw bytes or one well-framed frame of any type, and the decoders behind EXEC,
// CONFIGURE, users and the kernel command line. Seeded with the shared vectors
// (packages/agent-protocol/vectors/frames.json); `go test ./...` runs the seeds, fuzz.sh
// fuzzes each target for a bounded time.
//
// No fuzzed EXEC is ever run: the sessions drop EXEC frames and run only the two `cat`
// processes the harness starts itself (one on pipes, one on a terminal).

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

// vectorBytes is every frame stream of the shared vectors, valid and invalid.
func vectorBytes(tb testing.TB) (valid, invalid [][]byte) {
	b, err := os.ReadFile("../../packages/agent-protocol/vectors/frames.json")
	if err != nil {
		tb.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatal(err)
	}
	for _, x := range v.Valid {
		raw, err := hex.DecodeString(x.Hex)
		if err != nil {
			tb.Fatal(err)
		}
		valid = append(valid, raw)
	}
	for _, x := range v.Invalid {
		raw, err := hex.DecodeString(x.Hex)
		if err != nil {
			tb.Fatal(err)
		}
		invalid = append(invalid, raw)
	}
	return valid, invalid
}

// vectorFrames is every frame of the valid vectors, decoded.
func vectorFrames(tb testing.TB) []Frame {
	valid, _ := vectorBytes(tb)
	var frames []Frame
	for _, raw := range valid {
		fs, err := decodeAll(bytes.NewReader(raw))
		if err != io.EOF {
			tb.Fatalf("vector: %v", err)
		}
		frames = append(frames, fs...)
	}
	return frames
}

// decodeAll reads frames until the decoder stops, returning them and the error it stopped on.
func decodeAll(r io.Reader) ([]Frame, error) {
	d := NewDecoder(r)
	var frames []Frame
	for {
		f, err := d.Next()
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
}

// chunkReader hands out data in chunks whose sizes come from the data itself: every split
// of the stream the fuzzer can think of.
type chunkReader struct {
	data []byte
	i    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.i >= len(c.data) {
		return 0, io.EOF
	}
	n := int(c.data[c.i])%13 + 1
	if n > len(p) {
		n = len(p)
	}
	if n > len(c.data)-c.i {
		n = len(c.data) - c.i
	}
	copy(p, c.data[c.i:c.i+n])
	c.i += n
	return n, nil
}

func FuzzFrameReader(f *testing.F) {
	valid, invalid := vectorBytes(f)
	for _, raw := range append(valid, invalid...) {
		f.Add(raw)
	}
	f.Add(bytes.Join(valid, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, err := decodeAll(bytes.NewReader(data))
		var pe *ProtocolError
		if err != io.EOF && !errors.As(err, &pe) {
			t.Fatalf("error %v (%T) is neither EOF nor a ProtocolError", err, err)
		}
		// The frames are exactly a prefix of the input, and a clean end means all of it.
		var enc []byte
		for _, fr := range frames {
			if len(fr.Payload) > maxPayload {
				t.Fatalf("payload of %d bytes", len(fr.Payload))
			}
			enc = AppendFrame(enc, fr)
		}
		if !bytes.HasPrefix(data, enc) {
			t.Fatal("the frames do not re-encode to the input")
		}
		rest := data[len(enc):]
		switch {
		case err == io.EOF:
			if len(rest) != 0 {
				t.Fatalf("EOF with %d bytes left", len(rest))
			}
		case len(rest) < 4:
			if pe.Kind != "truncated" {
				t.Fatalf("%d header bytes left: %s", len(rest), pe.Kind)
			}
		default:
			length := binary.BigEndian.Uint32(rest)
			want := "truncated"
			if length < headerSize-4 {
				want = "short"
			} else if length > headerSize-4+maxPayload {
				want = "oversized"
			}
			if pe.Kind != want {
				t.Fatalf("length %d with %d bytes left: %s, want %s", length, len(rest), pe.Kind, want)
			}
		}
		// Split anywhere, the stream decodes the same.
		for _, r := range []io.Reader{iotest.OneByteReader(bytes.NewReader(data)), &chunkReader{data: data}, iotest.DataErrReader(bytes.NewReader(data))} {
			again, err2 := decodeAll(r)
			if !sameFrames(frames, again) || !sameError(err, err2) {
				t.Fatalf("split reads differ: %d frames %v, then %d frames %v", len(frames), err, len(again), err2)
			}
		}
	})
}

func sameFrames(a, b []Frame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Stream != b[i].Stream || !bytes.Equal(a[i].Payload, b[i].Payload) {
			return false
		}
	}
	return true
}

func sameError(a, b error) bool {
	var pa, pb *ProtocolError
	if errors.As(a, &pa) && errors.As(b, &pb) {
		return pa.Kind == pb.Kind
	}
	return a == b
}

// fuzzSession is an agent session over net.Pipe with a `cat` on pipes (stream 1) and a `cat`
// on a terminal (stream 2) running, and a host side that records every frame the agent sends.
type fuzzSession struct {
	t       *testing.T
	host    net.Conn
	served  chan error
	mu      sync.Mutex
	got     []Frame
	readErr error
	read    chan struct{} // closed when the host's reader stops
	pids    []int
}

const pipeStream, ttyStream = 1, 2

func startFuzzSession(t *testing.T) *fuzzSession {
	hostSide, guestSide := net.Pipe()
	s := &fuzzSession{t: t, host: hostSide, served: make(chan error, 1), read: make(chan struct{})}
	cfg := Config{
		Agent:    "fuzz",
		Logf:     func(string, ...any) {},
		Shutdown: func() {},
		// Validation only: the side effects of CONFIGURE are FuzzGuestConfig's.
		Configure: func(c *GuestConfig) error { _, err := c.validate(); return err },
	}
	go func() { s.served <- Serve(guestSide, cfg); guestSide.Close() }()
	go func() {
		defer close(s.read)
		d := NewDecoder(hostSide)
		for {
			f, err := d.Next()
			s.mu.Lock()
			if err != nil {
				s.readErr = err
				s.mu.Unlock()
				return
			}
			s.got = append(s.got, f)
			s.mu.Unlock()
		}
	}()
	s.write(AppendFrame(nil, Frame{tHello, 0, []byte(`{"version":1}`)}))
	s.waitFor("HELLO_ACK", func(f Frame) bool { return f.Type == tHelloAck })
	s.write(AppendFrame(nil, Frame{tExec, pipeStream, []byte(`{"argv":["cat"],"env":[]}`)}))
	s.write(AppendFrame(nil, Frame{tExec, ttyStream, []byte(`{"argv":["cat"],"env":[],"tty":{"rows":24,"cols":80}}`)}))
	for _, id := range []uint32{pipeStream, ttyStream} {
		f := s.waitFor("STARTED", func(f Frame) bool { return f.Type == tStarted && f.Stream == id })
		var st struct{ Pid int }
		if json.Unmarshal(f.Payload, &st) != nil || st.Pid <= 0 {
			t.Fatalf("STARTED %s", f.Payload)
		}
		s.pids = append(s.pids, st.Pid)
	}
	return s
}

// write sends bytes to the agent; an agent that ended its session (framing error) refuses them.
func (s *fuzzSession) write(b []byte) {
	s.host.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.host.Write(b); err != nil && !errors.Is(err, io.ErrClosedPipe) {
		s.t.Fatalf("write to the agent: %v", err)
	}
}

func (s *fuzzSession) waitFor(what string, match func(Frame) bool) Frame {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for seen := 0; ; {
		s.mu.Lock()
		got, stopped := s.got, s.readErr != nil
		s.mu.Unlock()
		for ; seen < len(got); seen++ {
			if match(got[seen]) {
				return got[seen]
			}
		}
		if stopped || time.Now().After(deadline) {
			s.t.Fatalf("no %s from the agent (stopped: %v)", what, stopped)
		}
		time.Sleep(time.Millisecond)
	}
}

var knownErrorCodes = map[string]bool{"bad_message": true, "not_ready": true, "stream_in_use": true, "spawn_failed": true, "configure_failed": true}

// end closes the channel and checks what the agent did: the session returned (no hang), it
// sent only well-formed frames, no output past its window, and its processes are gone.
func (s *fuzzSession) end(credits map[[2]uint32]uint64) error {
	t := s.t
	t.Helper()
	s.host.Close()
	var served error
	select {
	case served = <-s.served:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end after the channel closed")
	}
	<-s.read
	if s.readErr != io.EOF && !errors.Is(s.readErr, io.ErrClosedPipe) {
		t.Fatalf("the agent sent a bad frame stream: %v", s.readErr)
	}
	out := map[[2]uint32]uint64{}
	exited := map[uint32]bool{}
	for _, f := range s.got {
		// EXIT is the last frame of its stream (an ERROR may still answer a bad host frame).
		if exited[f.Stream] && f.Type != tError {
			t.Fatalf("frame type %d on stream %d after its EXIT", f.Type, f.Stream)
		}
		switch f.Type {
		case tError:
			var m struct{ Code, Message string }
			if json.Unmarshal(f.Payload, &m) != nil || !knownErrorCodes[m.Code] {
				t.Fatalf("ERROR payload %q", f.Payload)
			}
		case tStdout, tStderr:
			if len(f.Payload) > maxDataChunk {
				t.Fatalf("data frame of %d bytes", len(f.Payload))
			}
			out[[2]uint32{f.Stream, uint32(f.Type - tStdout + 1)}] += uint64(len(f.Payload))
		case tExit:
			exited[f.Stream] = true
		}
	}
	for k, n := range out {
		if n > initialWindow+credits[k] {
			t.Fatalf("stream %d channel %d: %d bytes sent on a window of %d", k[0], k[1], n, initialWindow+credits[k])
		}
	}
	for _, pid := range s.pids {
		for i := 0; syscall.Kill(pid, 0) == nil; i++ {
			if i > 10000 {
				t.Fatalf("process %d outlived its session", pid)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return served
}

// creditsIn sums the host's CREDIT frames per (stream, channel).
func creditsIn(frames []Frame) map[[2]uint32]uint64 {
	c := map[[2]uint32]uint64{}
	for _, f := range frames {
		if f.Type == tCredit && len(f.Payload) == 5 {
			c[[2]uint32{f.Stream, uint32(f.Payload[0])}] += uint64(binary.BigEndian.Uint32(f.Payload[1:]))
		}
	}
	return c
}

// touchesFiles: EXEC runs what it names, COPY_IN / COPY_OUT write and read the fuzzing
// machine's files; their requests are covered by copy_test.go.
func touchesFiles(typ uint8) bool { return typ == tExec || typ == tCopyIn || typ == tCopyOut }

// withoutExec re-encodes data with its EXEC and copy frames dropped, keeping whatever follows the last
// whole frame (the garbage that makes the framing error) as it is.
func withoutExec(data []byte) (out []byte, frames []Frame, err error) {
	all, err := decodeAll(bytes.NewReader(data))
	n := 0
	for _, f := range all {
		n += headerSize + len(f.Payload)
		if !touchesFiles(f.Type) {
			out = AppendFrame(out, f)
			frames = append(frames, f)
		}
	}
	return append(out, data[n:]...), frames, err
}

func FuzzSessionStream(f *testing.F) {
	valid, invalid := vectorBytes(f)
	for _, raw := range append(valid, invalid...) {
		f.Add(raw)
	}
	f.Add(bytes.Join(valid, nil))
	f.Add(bytes.Join([][]byte{
		AppendFrame(nil, Frame{tStdin, pipeStream, []byte("to the pipe")}),
		AppendFrame(nil, Frame{tStdin, ttyStream, []byte("to the terminal\n")}),
		AppendFrame(nil, Frame{tCredit, pipeStream, []byte{1, 0, 1, 0, 0}}),
		AppendFrame(nil, Frame{tResize, ttyStream, []byte(`{"rows":50,"cols":132}`)}),
		AppendFrame(nil, Frame{tSignal, ttyStream, []byte(`{"signal":19}`)}),
		AppendFrame(nil, Frame{tStdinClose, pipeStream, nil}),
		{0, 0, 0, 9, tPing, 0},
	}, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		input, frames, wantErr := withoutExec(data)
		goroutines := runtime.NumGoroutine()
		s := startFuzzSession(t)
		s.write(input)
		served := s.end(creditsIn(frames))
		// The session stops exactly where the framing breaks: a clean end at a frame boundary.
		if !sameError(served, wantErr) {
			t.Fatalf("the session ended with %v, the frames with %v", served, wantErr)
		}
		settleGoroutines(t, goroutines)
	})
}

// settleGoroutines fails if the session left goroutines behind (pumps, feeders, waiters).
func settleGoroutines(t *testing.T, before int) {
	for i := 0; runtime.NumGoroutine() > before; i++ {
		if i > 5000 {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func FuzzSessionFrame(f *testing.F) {
	for _, fr := range vectorFrames(f) {
		f.Add(fr.Type, fr.Stream, fr.Payload)
	}
	f.Add(uint8(tCredit), uint32(pipeStream), []byte{1, 0, 0, 0, 1})
	f.Add(uint8(tCredit), uint32(ttyStream), []byte{3, 0, 0, 0, 1})
	f.Add(uint8(tResize), uint32(ttyStream), []byte(`{"rows":65535,"cols":1}`))
	f.Add(uint8(tSignal), uint32(pipeStream), []byte(`{"signal":64}`))
	f.Add(uint8(tStdin), uint32(ttyStream), []byte("\x03\x04\x1a"))
	f.Add(uint8(tStdinClose), uint32(ttyStream), []byte{})
	f.Add(uint8(tConfigure), uint32(0), []byte(fullConfig))
	f.Add(uint8(tHello), uint32(0), []byte(`{"version":0}`))
	f.Add(uint8(tMetrics), uint32(0), bytes.Repeat([]byte("m"), 65))
	f.Add(uint8(255), uint32(0xffffffff), []byte{})
	f.Fuzz(func(t *testing.T, typ uint8, stream uint32, payload []byte) {
		if touchesFiles(typ) || len(payload) > maxPayload {
			return // EXEC runs what it names (FuzzExecRequest covers its decoding), copies touch files
		}
		goroutines := runtime.NumGoroutine()
		s := startFuzzSession(t)
		s.write(AppendFrame(nil, Frame{typ, stream, payload}))
		// A well-framed frame, whatever it holds, leaves the session usable (after a THAW, which
		// ends a FREEZE: until then the agent writes nothing, by design).
		s.write(AppendFrame(nil, Frame{tThaw, 0, []byte(`{"timeMs":0}`)}))
		s.write(AppendFrame(nil, Frame{tPing, 0, []byte("fuzz-end")}))
		s.waitFor("PONG", func(f Frame) bool { return f.Type == tPong && string(f.Payload) == "fuzz-end" })
		if err := s.end(creditsIn([]Frame{{typ, stream, payload}})); err != io.EOF {
			t.Fatalf("the session ended with %v", err)
		}
		settleGoroutines(t, goroutines)
	})
}

func FuzzExecRequest(f *testing.F) {
	for _, fr := range vectorFrames(f) {
		if fr.Type == tExec {
			f.Add(fr.Payload)
		}
	}
	f.Add([]byte(`{"argv":["sh","-c","id"],"env":[["PATH","/bin"],["HOME","/h"]],"cwd":"/tmp","uid":4294967295,"gid":7,"user":"app:staff","timeoutMs":1,"tty":{"rows":1,"cols":65535}}`))
	f.Add([]byte(`{"argv":[""],"env":[["A=B","c"]],"timeoutMs":-1,"tty":{"rows":0}}`))
	f.Add([]byte(`{"argv":["x"],"env":[["K"]],"uid":-1}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var req execRequest
		if json.Unmarshal(payload, &req) != nil || req.validate() != nil {
			return
		}
		// What validate lets through is what startExec relies on.
		if len(req.Argv) == 0 || req.Argv[0] == "" || req.TimeoutMs < 0 || (req.Tty != nil && !req.Tty.valid()) {
			t.Fatalf("validated %+v", req)
		}
		for _, kv := range req.Env {
			if len(kv) != 2 || kv[0] == "" || strings.Contains(kv[0], "=") {
				t.Fatalf("validated env %q", kv)
			}
		}
		// The lookups startExec does before spawning (they only read files).
		if req.User != "" {
			resolveUser(req.User, "testdata/passwd", "testdata/group")
		}
		lookPath(req.Argv[0], defaultPath, "/")
	})
}

func FuzzResolveUser(f *testing.F) {
	passwd, _ := os.ReadFile("testdata/passwd")
	group, _ := os.ReadFile("testdata/group")
	for _, spec := range []string{"app", "1000", "app:staff", "4242:7", "root", "nobody-here", "app:nogroup", ":", "::", "0:0:0", "app:50"} {
		f.Add(spec, passwd, group)
	}
	f.Add("x", []byte("x:x:1:2:::\n:::::::\nx\n#x:x:0:0:::\n"), []byte("g:x:1:x,y,,\n::::\n"))
	f.Fuzz(func(t *testing.T, spec string, passwd, group []byte) {
		dir := t.TempDir()
		p, g := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
		if os.WriteFile(p, passwd, 0o644) != nil || os.WriteFile(g, group, 0o644) != nil {
			t.Fatal("write")
		}
		id, err := resolveUser(spec, p, g)
		userPart, _, _ := strings.Cut(spec, ":")
		if n, ok := parseID(userPart); ok && err == nil && id.uid != n && !bytes.Contains(passwd, []byte(userPart)) {
			t.Fatalf("%q resolved to uid %d", spec, id.uid)
		}
	})
}

func FuzzGuestConfig(f *testing.F) {
	for _, fr := range vectorFrames(f) {
		if fr.Type == tConfigure {
			f.Add(fr.Payload)
		}
	}
	f.Add([]byte(fullConfig))
	f.Add([]byte(`{"network":{"address":"10.0.2.15","prefixLength":32,"gateway":"","dns":[],"mtu":68},"mounts":[{"tag":"t","path":"/a/../b","file":"f"}]}`))
	f.Add([]byte(`{"mounts":[{"tag":"..","path":"/x"},{"tag":"a","path":"/x\u0000"}]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		var c GuestConfig
		if json.Unmarshal(payload, &c) != nil {
			return
		}
		root := filepath.Join(t.TempDir(), "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := c.validate(); err == nil {
			for _, m := range c.Mounts {
				// The agent joins paths onto "/" in the VM; here onto a temp root, which a path
				// with ".." above "/" would leave: such a config is checked but not applied.
				if !strings.HasPrefix(filepath.Join(root, m.Path), root+"/") || !strings.HasPrefix(filepath.Join(root, volumesDir, m.Tag), root+"/") {
					return
				}
				if path.Clean(m.Path) == "/" || strings.ContainsAny(m.Tag, "/\x00") {
					t.Fatalf("validated mount %+v", m)
				}
			}
		}
		ops := &fakeOps{}
		apply := configureOnce(ops.ops(root))
		first := apply(&c)
		if first != nil {
			if _, bad := c.validate(); bad != nil && len(ops.calls) != 0 {
				t.Fatalf("an invalid config did %v", ops.calls)
			}
		}
		calls := len(ops.calls)
		// Configured again (a host that reconnected): the same answer, nothing redone.
		if again := apply(&c); (again == nil) != (first == nil) || len(ops.calls) != calls {
			t.Fatalf("again: %v then %v, calls %d then %d", first, again, calls, len(ops.calls))
		}
		for _, call := range ops.calls {
			if strings.HasPrefix(call, "mount ") && !strings.Contains(call, " ROOT") {
				t.Fatalf("mounted outside the root: %s", call)
			}
		}
	})
}

func FuzzCmdline(f *testing.F) {
	f.Add("console=ttyS0 boxlite.port=boxlite.agent boxlite.root=/dev/vda boxlite.rootfstype=ext4 boxlite.hostname=box1 boxlite.probe=1")
	f.Add("boxlite.hostname= boxlite.port==x =y \t\n boxlite.root")
	f.Add("boxlite.virtio=pci boxlite.vsock=01024")
	f.Add("boxlite.vsock=+7 boxlite.vsock")
	f.Fuzz(func(t *testing.T, s string) {
		c := parseCmdline(s)
		// The key gives a port it spells (decimal) or an error naming the key; never a panic.
		p, err := c.vsockPort()
		v, ok := c["boxlite.vsock"]
		switch {
		case err != nil:
			if p != 0 || !ok || !strings.Contains(err.Error(), "boxlite.vsock") {
				t.Fatalf("vsock %d %v", p, err)
			}
		case ok:
			if p == 0 || p == 0xffffffff || strings.TrimLeft(v, "0") != strconv.FormatUint(uint64(p), 10) {
				t.Fatalf("vsock %q read as %d", v, p)
			}
		case p != 0:
			t.Fatalf("vsock %d without the key", p)
		}
		for k, v := range c {
			if strings.ContainsAny(k+v, " \t\n") || strings.Contains(k, "=") {
				t.Fatalf("word %q=%q", k, v)
			}
			if got := c.get(k, "default"); v != "" && got != v {
				t.Fatalf("get %q: %q, want %q", k, got, v)
			}
		}
	})
}
