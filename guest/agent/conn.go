package main

// One connection (session) over the agent channel: handshake, dispatch of incoming frames,
// and a single writer goroutine that owns the outgoing side of the channel.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"syscall"
)

// Config is what the session needs from its environment; tests fill it without a VM.
type Config struct {
	Agent    string                        // HELLO_ACK "agent" field
	Shutdown func()                        // SHUTDOWN; in the VM it powers off and never returns
	Logf     func(format string, a ...any) // console log, for rare events only
	// Configure applies a CONFIGURE (network, mounts); nil answers configure_failed.
	Configure func(*GuestConfig) error
	// Thaw applies a THAW to the system (clock, RNG, identity); nil does nothing.
	Thaw func(*ThawRequest) error
}

// ThawRequest is a THAW's payload (PROTOCOL.md, "Saving and restoring a VM").
type ThawRequest struct {
	TimeMs  int64  `json:"timeMs"`
	Entropy []byte `json:"entropy"` // base64 in JSON
	Fresh   bool   `json:"fresh"`
}

type outFrame struct {
	typ     uint8
	stream  uint32
	payload []byte
	buf     *[]byte // returned to bufPool once written
	// hold: once this frame is written and flushed, nothing more is written until it closes (FROZEN).
	hold chan struct{}
}

// bufPool recycles data chunk buffers between the pipe readers and the writer.
var bufPool = sync.Pool{New: func() any { b := make([]byte, maxDataChunk); return &b }}

type session struct {
	cfg    Config
	out    chan outFrame
	done   chan struct{}
	mu     sync.Mutex
	execs  map[uint32]*execution
	copies map[uint32]*copyStream
	ready  bool // only touched by the read loop
	// thawed is open while the channel is frozen (read loop only).
	thawed chan struct{}
	// nextStream is above every stream id the host has used (under mu).
	nextStream uint32
}

// Serve runs one session until the channel ends (io.EOF), a framing error or an I/O error,
// which it returns. Processes still running when it returns are killed.
func Serve(rw io.ReadWriter, cfg Config) error {
	s := &session{
		cfg:    cfg,
		out:    make(chan outFrame, 64),
		done:   make(chan struct{}),
		execs:  map[uint32]*execution{},
		copies: map[uint32]*copyStream{},
	}
	go s.writeLoop(rw)
	defer s.close()
	dec := NewDecoder(rw)
	for {
		f, err := dec.Next()
		if err != nil {
			return err
		}
		s.dispatch(f)
	}
}

func (s *session) close() {
	close(s.done)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.execs {
		e.abort()
	}
	for _, c := range s.copies {
		c.cancel()
	}
}

// writeLoop batches frames into large writes and flushes whenever the queue runs dry.
func (s *session) writeLoop(w io.Writer) {
	bw := bufio.NewWriterSize(w, 128<<10)
	var hdr [headerSize]byte
	var err error
	for {
		select {
		case f := <-s.out:
			if err == nil {
				bw.Write(AppendHeader(hdr[:0], f.typ, f.stream, len(f.payload)))
				_, err = bw.Write(f.payload)
				if err == nil && (len(s.out) == 0 || f.hold != nil) {
					err = bw.Flush()
				}
				if err != nil {
					s.cfg.Logf("write: %v", err)
				}
			}
			if f.buf != nil {
				bufPool.Put(f.buf)
			}
			if f.hold != nil {
				select {
				case <-f.hold:
				case <-s.done:
					return
				}
			}
		case <-s.done:
			return
		}
	}
}

// send queues a frame; it reports false (and drops it) once the session is over.
func (s *session) send(f outFrame) bool {
	select {
	case s.out <- f:
		return true
	case <-s.done:
		if f.buf != nil {
			bufPool.Put(f.buf)
		}
		return false
	}
}

func (s *session) sendJSON(typ uint8, stream uint32, v any) {
	b, _ := json.Marshal(v)
	s.send(outFrame{typ: typ, stream: stream, payload: b})
}

func (s *session) sendError(stream uint32, code, format string, a ...any) {
	s.sendJSON(tError, stream, struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}{code, fmt.Sprintf(format, a...)})
}

func (s *session) sendCredit(stream uint32, channel byte, n int) {
	p := make([]byte, 5)
	p[0] = channel
	binary.BigEndian.PutUint32(p[1:], uint32(n))
	s.send(outFrame{typ: tCredit, stream: stream, payload: p})
}

func (s *session) lookup(id uint32) *execution {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execs[id]
}

func (s *session) lookupCopy(id uint32) *copyStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copies[id]
}

func (s *session) dispatch(f Frame) {
	if f.Type == tHello {
		s.hello(f)
		return
	}
	if !s.ready {
		s.sendError(f.Stream, "not_ready", "send HELLO first")
		return
	}
	switch f.Type {
	case tExec:
		s.exec(f)
	case tCopyIn, tCopyOut:
		s.startCopy(f, f.Type == tCopyIn)
	case tStdin:
		if e := s.lookup(f.Stream); e != nil && len(f.Payload) > 0 {
			e.stdin.push(f.Payload)
		} else if c := s.lookupCopy(f.Stream); c != nil && len(f.Payload) > 0 {
			c.input(f.Payload)
		}
	case tStdinClose:
		if e := s.lookup(f.Stream); e != nil {
			e.stdin.closeInput()
		} else if c := s.lookupCopy(f.Stream); c != nil {
			c.closeInput()
		}
	case tCredit:
		if len(f.Payload) != 5 || f.Payload[0] > 2 {
			s.sendError(f.Stream, "bad_message", "bad CREDIT payload")
			return
		}
		// Channel 0 (stdin) credit only flows guest -> host; ignore it from the host.
		if e := s.lookup(f.Stream); e != nil && f.Payload[0] > 0 {
			e.out[f.Payload[0]-1].credit(binary.BigEndian.Uint32(f.Payload[1:]))
		} else if c := s.lookupCopy(f.Stream); c != nil && f.Payload[0] == 1 {
			c.out.credit(binary.BigEndian.Uint32(f.Payload[1:]))
		}
	case tResize:
		var size ttySize
		if json.Unmarshal(f.Payload, &size) != nil || !size.valid() {
			s.sendError(f.Stream, "bad_message", "bad RESIZE payload")
			return
		}
		if e := s.lookup(f.Stream); e != nil {
			e.resize(size)
		}
	case tSignal:
		var m struct {
			Signal *int `json:"signal"`
		}
		if json.Unmarshal(f.Payload, &m) != nil || m.Signal == nil || *m.Signal < 1 || *m.Signal > 64 {
			s.sendError(f.Stream, "bad_message", "bad SIGNAL payload")
			return
		}
		if e := s.lookup(f.Stream); e != nil {
			e.signal(*m.Signal, false)
		} else if c := s.lookupCopy(f.Stream); c != nil {
			c.cancel()
		}
	case tPing:
		if len(f.Payload) > 64 {
			s.sendError(0, "bad_message", "PING payload over 64 bytes")
			return
		}
		s.send(outFrame{typ: tPong, payload: f.Payload})
	case tMetrics:
		if len(f.Payload) > 64 {
			s.sendError(0, "bad_message", "METRICS payload over 64 bytes")
			return
		}
		s.sendJSON(tMetricsReport, 0, readMetrics(string(f.Payload)))
	case tShutdown:
		s.cfg.Shutdown()
	case tConfigure:
		s.configure(f)
	case tFreeze:
		s.freeze(f)
	case tThaw:
		s.thaw(f)
	case tError:
		s.cfg.Logf("host error on stream %d: %s", f.Stream, f.Payload)
	default:
		s.sendError(f.Stream, "bad_message", "unexpected frame type %d", f.Type)
	}
}

func (s *session) hello(f Frame) {
	var m struct {
		Version *int `json:"version"`
	}
	if json.Unmarshal(f.Payload, &m) != nil || m.Version == nil {
		s.sendError(f.Stream, "bad_message", "bad HELLO payload")
		return
	}
	if *m.Version < 1 {
		s.sendError(f.Stream, "bad_message", "unsupported protocol version %d", *m.Version)
		return
	}
	s.ready = true
	s.sendJSON(tHelloAck, 0, struct {
		Version int    `json:"version"`
		Agent   string `json:"agent"`
	}{protocolVersion, s.cfg.Agent})
}

// freeze syncs, then makes FROZEN the last frame written until THAW: the host saves the VM
// with no frame half sent.
func (s *session) freeze(f Frame) {
	if f.Stream != 0 || s.thawed != nil {
		s.sendError(f.Stream, "bad_message", "FREEZE on stream 0, once until THAW")
		return
	}
	syscall.Sync()
	s.thawed = make(chan struct{})
	s.send(outFrame{typ: tFrozen, hold: s.thawed})
}

// thaw lets the writer go on and, for a fresh host, detaches the streams of the old one.
func (s *session) thaw(f Frame) {
	var req ThawRequest
	if f.Stream != 0 || json.Unmarshal(f.Payload, &req) != nil {
		s.sendError(f.Stream, "bad_message", "bad THAW payload")
		return
	}
	if s.thawed != nil {
		close(s.thawed)
		s.thawed = nil
	}
	if s.cfg.Thaw != nil {
		if err := s.cfg.Thaw(&req); err != nil {
			s.cfg.Logf("thaw: %v", err)
		}
	}
	s.mu.Lock()
	if req.Fresh {
		for id, e := range s.execs {
			e.detach()
			delete(s.execs, id)
		}
		for id, c := range s.copies {
			c.cancel()
			delete(s.copies, id)
		}
	}
	next := s.nextStream
	s.mu.Unlock()
	s.sendJSON(tThawed, 0, struct {
		NextStream uint32 `json:"nextStream"`
	}{next})
}

// claimStream records a new stream id (under s.mu): a host after THAW numbers above it.
func (s *session) claimStream(id uint32) {
	if id >= s.nextStream {
		s.nextStream = id + 1
	}
}

func (s *session) exec(f Frame) {
	var req execRequest
	if err := json.Unmarshal(f.Payload, &req); err != nil || f.Stream == 0 || req.validate() != nil {
		s.sendError(f.Stream, "bad_message", "bad EXEC request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.execs[f.Stream] != nil || s.copies[f.Stream] != nil {
		s.sendError(f.Stream, "stream_in_use", "stream %d is in use", f.Stream)
		return
	}
	s.claimStream(f.Stream)
	e, err := startExec(s, f.Stream, &req)
	if err != nil {
		s.sendError(f.Stream, "spawn_failed", "%v", err)
		return
	}
	s.execs[f.Stream] = e
}

// configure runs in the read loop: nothing else is read until the guest is configured, so an
// EXEC the host sends after CONFIGURED sees the network and the mounts.
func (s *session) configure(f Frame) {
	var c GuestConfig
	if f.Stream != 0 || json.Unmarshal(f.Payload, &c) != nil {
		s.sendError(f.Stream, "bad_message", "bad CONFIGURE payload")
		return
	}
	if s.cfg.Configure == nil {
		s.sendError(0, "configure_failed", "this agent cannot configure the guest")
		return
	}
	if err := s.cfg.Configure(&c); err != nil {
		s.cfg.Logf("configure: %v", err)
		s.sendError(0, "configure_failed", "%v", err)
		return
	}
	s.send(outFrame{typ: tConfigured, payload: []byte("{}")})
}
