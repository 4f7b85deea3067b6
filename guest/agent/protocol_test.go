package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand"
	"os"
	"testing"
)

type vectorFrame struct {
	Type       uint8  `json:"type"`
	Stream     uint32 `json:"stream"`
	PayloadHex string `json:"payloadHex"`
}

type vectors struct {
	Constants struct {
		Version       int `json:"version"`
		MaxPayload    int `json:"maxPayload"`
		MaxDataChunk  int `json:"maxDataChunk"`
		InitialWindow int `json:"initialWindow"`
		HeaderSize    int `json:"headerSize"`
	} `json:"constants"`
	Types map[string]uint8 `json:"types"`
	Valid []struct {
		Name   string        `json:"name"`
		Hex    string        `json:"hex"`
		Frames []vectorFrame `json:"frames"`
	} `json:"valid"`
	Invalid []struct {
		Name         string `json:"name"`
		Hex          string `json:"hex"`
		Error        string `json:"error"`
		FramesBefore int    `json:"framesBefore"`
	} `json:"invalid"`
	MaxPayloadFrame struct {
		Type          uint8  `json:"type"`
		Stream        uint32 `json:"stream"`
		PayloadByte   string `json:"payloadByte"`
		PayloadLength int    `json:"payloadLength"`
		Sha256        string `json:"sha256"`
	} `json:"maxPayloadFrame"`
}

func loadVectors(t *testing.T) *vectors {
	b, err := os.ReadFile("../../packages/agent-protocol/vectors/frames.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConstantsMatchVectors(t *testing.T) {
	v := loadVectors(t)
	c := v.Constants
	if c.Version != protocolVersion || c.MaxPayload != maxPayload || c.MaxDataChunk != maxDataChunk ||
		c.InitialWindow != initialWindow || c.HeaderSize != headerSize {
		t.Fatalf("constants differ: %+v", c)
	}
	want := map[string]uint8{"HELLO": tHello, "HELLO_ACK": tHelloAck, "EXEC": tExec, "STARTED": tStarted,
		"STDIN": tStdin, "STDIN_CLOSE": tStdinClose, "STDOUT": tStdout, "STDERR": tStderr, "CREDIT": tCredit,
		"SIGNAL": tSignal, "EXIT": tExit, "ERROR": tError, "PING": tPing, "PONG": tPong, "SHUTDOWN": tShutdown,
		"CONFIGURE": tConfigure, "CONFIGURED": tConfigured, "METRICS": tMetrics, "METRICS_REPORT": tMetricsReport, "RESIZE": tResize,
		"COPY_IN": tCopyIn, "COPY_OUT": tCopyOut, "FREEZE": tFreeze, "FROZEN": tFrozen, "THAW": tThaw, "THAWED": tThawed,
		"CONTROL": 27, "CONTROL_DONE": 28} // host-only (client <-> supervisor): the agent refuses them as bad_message
	if len(v.Types) != len(want) {
		t.Fatalf("types: %v", v.Types)
	}
	for k, n := range want {
		if v.Types[k] != n {
			t.Errorf("type %s: vectors %d, agent %d", k, v.Types[k], n)
		}
	}
}

func TestValidVectors(t *testing.T) {
	for _, vec := range loadVectors(t).Valid {
		t.Run(vec.Name, func(t *testing.T) {
			raw := unhex(t, vec.Hex)
			d := NewDecoder(bytes.NewReader(raw))
			var enc []byte
			for i, want := range vec.Frames {
				f, err := d.Next()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if f.Type != want.Type || f.Stream != want.Stream || hex.EncodeToString(f.Payload) != want.PayloadHex {
					t.Fatalf("frame %d: got %d/%d/%x want %+v", i, f.Type, f.Stream, f.Payload, want)
				}
				enc = AppendFrame(enc, Frame{want.Type, want.Stream, unhex(t, want.PayloadHex)})
			}
			if _, err := d.Next(); err != io.EOF {
				t.Fatalf("after the frames: %v, want EOF", err)
			}
			if hex.EncodeToString(enc) != vec.Hex {
				t.Fatalf("encode: %x want %s", enc, vec.Hex)
			}
		})
	}
}

func TestInvalidVectors(t *testing.T) {
	for _, vec := range loadVectors(t).Invalid {
		t.Run(vec.Name, func(t *testing.T) {
			d := NewDecoder(bytes.NewReader(unhex(t, vec.Hex)))
			for i := 0; i < vec.FramesBefore; i++ {
				if _, err := d.Next(); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			_, err := d.Next()
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Kind != vec.Error {
				t.Fatalf("got %v, want %s", err, vec.Error)
			}
		})
	}
}

func TestMaxPayloadFrame(t *testing.T) {
	m := loadVectors(t).MaxPayloadFrame
	p := bytes.Repeat(unhex(t, m.PayloadByte), m.PayloadLength)
	enc := AppendFrame(nil, Frame{m.Type, m.Stream, p})
	if sum := sha256.Sum256(enc); hex.EncodeToString(sum[:]) != m.Sha256 {
		t.Fatalf("sha256 %x", sum)
	}
	f, err := NewDecoder(bytes.NewReader(enc)).Next()
	if err != nil || f.Type != m.Type || f.Stream != m.Stream || !bytes.Equal(f.Payload, p) {
		t.Fatalf("decode: %v", err)
	}
}

// The decoder never panics and never allocates more than a frame's worth on garbage.
func TestGarbageNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		b := make([]byte, rng.Intn(64))
		rng.Read(b)
		if i%2 == 0 && len(b) >= 4 { // plausible lengths reach the later checks
			b[0], b[1] = 0, 0
		}
		d := NewDecoder(bytes.NewReader(b))
		for {
			if _, err := d.Next(); err != nil {
				break
			}
		}
	}
}

func TestGarbageSessionSurvives(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 300; i++ {
		var in []byte
		for j := 0; j < 5; j++ {
			p := make([]byte, rng.Intn(40))
			rng.Read(p)
			typ := uint8(rng.Intn(20))
			if typ == tShutdown || typ == tExec {
				typ = tPing
			}
			in = AppendFrame(in, Frame{typ, uint32(rng.Intn(3)), p})
		}
		if i%3 == 0 {
			in = append(AppendFrame(nil, Frame{tHello, 0, []byte(`{"version":1}`)}), in...)
		}
		err := Serve(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), io.Discard}, Config{Logf: t.Logf, Shutdown: func() {}})
		if err != io.EOF {
			t.Fatalf("%v", err)
		}
	}
}
