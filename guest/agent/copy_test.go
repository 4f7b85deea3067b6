package main

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// copyOut runs a COPY_OUT, crediting as it reads, and returns the archive and the last frame.
func (h *testHost) copyOut(id uint32, req map[string]any) ([]byte, Frame) {
	h.t.Helper()
	h.sendJSON(tCopyOut, id, req)
	var archive []byte
	ended := false
	for {
		f := h.next()
		if f.Stream != id {
			h.t.Fatalf("frame type %d on stream %d", f.Type, f.Stream)
		}
		switch f.Type {
		case tStdout:
			if ended {
				h.t.Fatal("data after the end of the archive")
			}
			if len(f.Payload) > maxDataChunk {
				h.t.Fatalf("chunk of %d bytes", len(f.Payload))
			}
			ended = len(f.Payload) == 0
			archive = append(archive, f.Payload...)
			h.credit(id, 1, len(f.Payload))
		case tExit:
			if !ended {
				h.t.Fatal("EXIT before the end of the archive")
			}
			return archive, f
		case tError:
			return archive, f
		default:
			h.t.Fatalf("unexpected frame %d %s", f.Type, f.Payload)
		}
	}
}

// copyIn runs a COPY_IN of archive within the STDIN window and returns the last frame.
func (h *testHost) copyIn(id uint32, req map[string]any, archive []byte) Frame {
	h.t.Helper()
	h.sendJSON(tCopyIn, id, req)
	win := initialWindow
	for off := 0; ; {
		if off == len(archive) {
			h.send(tStdinClose, id, nil)
			off++
		}
		if off < len(archive) && win > 0 {
			n := min(len(archive)-off, maxDataChunk, win)
			h.send(tStdin, id, archive[off:off+n])
			off, win = off+n, win-n
			continue
		}
		f := h.next()
		switch f.Type {
		case tCredit:
			win += int(binary.BigEndian.Uint32(f.Payload[1:]))
		case tExit, tError:
			return f
		default:
			h.t.Fatalf("unexpected frame %d %s", f.Type, f.Payload)
		}
	}
}

type entry struct {
	name, link, body string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries ...entry) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return b.Bytes()
}

func readTar(t *testing.T, archive []byte) map[string]entry {
	got := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got[hdr.Name] = entry{name: hdr.Name, link: hdr.Linkname, body: string(body), typ: hdr.Typeflag, mode: hdr.Mode}
	}
}

func TestCopyOutTree(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	big := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640 KB: past the window
	os.WriteFile(filepath.Join(src, "big"), big, 0o600)
	os.Symlink("/etc/passwd", filepath.Join(src, "link"))
	syscall.Chmod(filepath.Join(src, "sub", "run.sh"), 0o4755)
	h := newHost(t, true)
	archive, last := h.copyOut(1, map[string]any{"path": src})
	if last.Type != tExit || string(last.Payload) != `{"exitCode":0}` {
		t.Fatalf("%d %s", last.Type, last.Payload)
	}
	got := readTar(t, archive)
	if got["src/"].typ != tar.TypeDir || got["src/sub/run.sh"].body != "#!/bin/sh\n" || got["src/sub/run.sh"].mode&0o7777 != 0o4755 {
		t.Fatalf("entries: %d, run.sh %o", len(got), got["src/sub/run.sh"].mode)
	}
	if got["src/big"].body != string(big) || got["src/big"].mode&0o777 != 0o600 {
		t.Fatal("big file differs")
	}
	if l := got["src/link"]; l.typ != tar.TypeSymlink || l.link != "/etc/passwd" {
		t.Fatalf("link: %+v", l)
	}
	// follow: a symlink asked for by name is sent as its target's content.
	archive, last = h.copyOut(2, map[string]any{"path": filepath.Join(src, "link"), "follow": true})
	if last.Type != tExit || readTar(t, archive)["link"].body == "" {
		t.Fatalf("follow: %s", last.Payload)
	}
}

func TestCopyOutErrors(t *testing.T) {
	h := newHost(t, true)
	_, last := h.copyOut(1, map[string]any{"path": "/no/such/file"})
	if last.Type != tError || !strings.Contains(string(last.Payload), `"code":"not_found"`) || !strings.Contains(string(last.Payload), "/no/such/file") {
		t.Fatalf("%d %s", last.Type, last.Payload)
	}
	for i, p := range []string{"relative", "/", "/a/../b", ""} {
		h.sendJSON(tCopyOut, uint32(10+i), map[string]any{"path": p})
		h.expectError(uint32(10+i), "bad_message")
	}
	h.sendJSON(tCopyOut, 20, map[string]any{"path": "/dev/null"})
	h.expectError(20, "copy_failed")
}

func TestCopyOutCancelled(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), make([]byte, 4<<20), 0o644)
	h := newHost(t, true)
	h.sendJSON(tCopyOut, 1, map[string]any{"path": filepath.Join(dir, "f")})
	// No credit: the guest stops at one window, then a SIGNAL ends the copy.
	n := 0
	for n < initialWindow {
		f := h.next()
		if f.Type != tStdout {
			t.Fatalf("%d %s", f.Type, f.Payload)
		}
		n += len(f.Payload)
	}
	h.sendJSON(tSignal, 1, map[string]int{"signal": 9})
	h.expectError(1, "cancelled")
}

func TestCopyInTree(t *testing.T) {
	dir := t.TempDir()
	h := newHost(t, true)
	archive := makeTar(t,
		entry{name: "tree/", typ: tar.TypeDir, mode: 0o750},
		entry{name: "tree/a.txt", typ: tar.TypeReg, mode: 0o640, body: "hello"},
		entry{name: "tree/ro/", typ: tar.TypeDir, mode: 0o555},
		entry{name: "tree/ro/x", typ: tar.TypeReg, mode: 0o755, body: strings.Repeat("x", 700_000)},
		entry{name: "tree/l", typ: tar.TypeSymlink, link: "/etc/passwd"},
		entry{name: "tree/h", typ: tar.TypeLink, link: "tree/a.txt"})
	// Into an existing directory: dir/tree.
	if f := h.copyIn(1, map[string]any{"path": dir}, archive); f.Type != tExit {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
	check := func(root string) {
		t.Helper()
		if b, _ := os.ReadFile(filepath.Join(root, "a.txt")); string(b) != "hello" {
			t.Fatalf("a.txt: %q", b)
		}
		if st, _ := os.Stat(filepath.Join(root, "a.txt")); st.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v", st.Mode())
		}
		if st, _ := os.Stat(filepath.Join(root, "ro")); st.Mode().Perm() != 0o555 {
			t.Fatalf("ro mode %v", st.Mode())
		}
		if b, _ := os.ReadFile(filepath.Join(root, "ro", "x")); len(b) != 700_000 {
			t.Fatalf("x: %d bytes", len(b))
		}
		if l, _ := os.Readlink(filepath.Join(root, "l")); l != "/etc/passwd" {
			t.Fatalf("link %q", l)
		}
		a, _ := os.Stat(filepath.Join(root, "a.txt"))
		hl, _ := os.Stat(filepath.Join(root, "h"))
		if !os.SameFile(a, hl) {
			t.Fatal("hard link lost")
		}
	}
	check(filepath.Join(dir, "tree"))
	// To a new name: dir/renamed.
	if f := h.copyIn(2, map[string]any{"path": filepath.Join(dir, "renamed")}, archive); f.Type != tExit {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
	check(filepath.Join(dir, "renamed"))
	// exact: a file onto a path (replacing a symlink there, never writing through it).
	os.Symlink(filepath.Join(dir, "tree", "a.txt"), filepath.Join(dir, "f"))
	one := makeTar(t, entry{name: "whatever", typ: tar.TypeReg, mode: 0o600, body: "new"})
	if f := h.copyIn(3, map[string]any{"path": filepath.Join(dir, "f"), "exact": true}, one); f.Type != tExit {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "new" {
		t.Fatalf("f: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tree", "a.txt")); string(b) != "hello" {
		t.Fatal("wrote through the symlink")
	}
	// exact onto a directory: refused.
	if f := h.copyIn(4, map[string]any{"path": filepath.Join(dir, "tree"), "exact": true}, one); f.Type != tError || !strings.Contains(string(f.Payload), "is a directory") {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
}

func TestCopyInErrors(t *testing.T) {
	dir := t.TempDir()
	h := newHost(t, true)
	f := h.copyIn(1, map[string]any{"path": "/no/such/dir/x"}, makeTar(t, entry{name: "x", typ: tar.TypeReg}))
	if f.Type != tError || !strings.Contains(string(f.Payload), `"code":"not_found"`) || !strings.Contains(string(f.Payload), "/no/such/dir") {
		t.Fatalf("%d %s", f.Type, f.Payload)
	}
	for i, bad := range [][]entry{
		{{name: "../escape", typ: tar.TypeReg}},
		{{name: "/abs", typ: tar.TypeReg}},
		{{name: "a/", typ: tar.TypeDir}, {name: "b", typ: tar.TypeReg}},
		{{name: "a/", typ: tar.TypeDir}, {name: "a/h", typ: tar.TypeLink, link: "../../etc/passwd"}},
		{{name: "dev", typ: tar.TypeChar}},
		{{name: "a/", typ: tar.TypeDir}, {name: "a/l", typ: tar.TypeSymlink, link: dir}, {name: "a/l/through", typ: tar.TypeReg}},
		{},
	} {
		f := h.copyIn(uint32(10+i), map[string]any{"path": filepath.Join(dir, "t")}, makeTar(t, bad...))
		if f.Type != tError || !strings.Contains(string(f.Payload), `"code":"copy_failed"`) {
			t.Fatalf("case %d: %d %s", i, f.Type, f.Payload)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
		t.Fatal("escaped")
	}
	if _, err := os.Stat(filepath.Join(dir, "through")); err == nil {
		t.Fatal("wrote through a symlink")
	}
	// The session is still usable.
	h.send(tPing, 0, []byte("ok"))
	if f := h.next(); f.Type != tPong {
		t.Fatalf("%d", f.Type)
	}
}

// FuzzExtract: whatever the archive, nothing is created outside the destination directory.
func FuzzExtract(f *testing.F) {
	f.Add(makeTar(&testing.T{}, entry{name: "t/", typ: tar.TypeDir}, entry{name: "t/l", typ: tar.TypeSymlink, link: ".."}, entry{name: "t/l/x", typ: tar.TypeReg, body: "x"}))
	f.Add(makeTar(&testing.T{}, entry{name: "t", typ: tar.TypeReg, body: "x"}, entry{name: "t/../../y", typ: tar.TypeReg}))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		dest := filepath.Join(base, "dest")
		os.Mkdir(dest, 0o755)
		extract(tar.NewReader(bytes.NewReader(data)), dest, "")
		if names, _ := os.ReadDir(base); len(names) != 1 {
			t.Fatalf("created outside the destination: %v", names)
		}
	})
}
