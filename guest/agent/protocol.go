package main

// Frame codec for the BoxLite agent protocol v1 (packages/agent-protocol/PROTOCOL.md).

import (
	"bufio"
	"encoding/binary"
	"io"
)

const (
	protocolVersion = 1
	headerSize      = 9
	maxPayload      = 1 << 20
	maxDataChunk    = 32 << 10
	initialWindow   = 256 << 10
)

const (
	tHello         = 1
	tHelloAck      = 2
	tExec          = 3
	tStarted       = 4
	tStdin         = 5
	tStdinClose    = 6
	tStdout        = 7
	tStderr        = 8
	tCredit        = 9
	tSignal        = 10
	tExit          = 11
	tError         = 12
	tPing          = 13
	tPong          = 14
	tShutdown      = 15
	tConfigure     = 16
	tConfigured    = 17
	tMetrics       = 18
	tMetricsReport = 19
	tResize        = 20
	tCopyIn        = 21
	tCopyOut       = 22
	tFreeze        = 23
	tFrozen        = 24
	tThaw          = 25
	tThawed        = 26
)

// Frame is one decoded frame. Payload is owned by the frame.
type Frame struct {
	Type    uint8
	Stream  uint32
	Payload []byte
}

// ProtocolError is a framing error; Kind matches the names used in the test vectors.
type ProtocolError struct{ Kind string }

func (e *ProtocolError) Error() string { return "protocol error: " + e.Kind }

var (
	errShort     = &ProtocolError{"short"}
	errOversized = &ProtocolError{"oversized"}
	errTruncated = &ProtocolError{"truncated"}
)

// Decoder reads frames from a byte stream. It returns io.EOF only at a frame boundary.
type Decoder struct {
	r   *bufio.Reader
	hdr [headerSize]byte
}

func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

func (d *Decoder) Next() (Frame, error) {
	if n, err := io.ReadFull(d.r, d.hdr[:4]); err != nil {
		if n == 0 && err == io.EOF {
			return Frame{}, io.EOF
		}
		return Frame{}, truncatedOr(err)
	}
	length := binary.BigEndian.Uint32(d.hdr[:4])
	// Checked before reading further so a huge length never makes us buffer anything.
	if length < headerSize-4 {
		return Frame{}, errShort
	}
	if length > headerSize-4+maxPayload {
		return Frame{}, errOversized
	}
	if _, err := io.ReadFull(d.r, d.hdr[4:]); err != nil {
		return Frame{}, truncatedOr(err)
	}
	f := Frame{Type: d.hdr[4], Stream: binary.BigEndian.Uint32(d.hdr[5:])}
	f.Payload = make([]byte, length-(headerSize-4))
	if _, err := io.ReadFull(d.r, f.Payload); err != nil {
		return Frame{}, truncatedOr(err)
	}
	return f, nil
}

// truncatedOr maps an end of stream inside a frame to errTruncated and keeps real I/O errors.
func truncatedOr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errTruncated
	}
	return err
}

// AppendHeader appends the 9-byte header of a frame with an n-byte payload.
func AppendHeader(dst []byte, typ uint8, stream uint32, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(headerSize-4+n))
	dst = append(dst, typ)
	return binary.BigEndian.AppendUint32(dst, stream)
}

// AppendFrame appends the encoding of f to dst.
func AppendFrame(dst []byte, f Frame) []byte {
	return append(AppendHeader(dst, f.Type, f.Stream, len(f.Payload)), f.Payload...)
}
