package main

// COPY_IN and COPY_OUT streams (PROTOCOL.md, "Copying files"): a tar archive of one file,
// symlink or directory tree, streamed through the exec stream's data frames and windows, so
// neither side holds more than a window of it in memory.

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type copyRequest struct {
	Path   string `json:"path"`
	Exact  bool   `json:"exact"`  // COPY_IN: the archive's top entry becomes `path` itself
	Follow bool   `json:"follow"` // COPY_OUT: a symlink at `path` is followed (its target is sent)
}

// validPath: absolute, clean, not the root (a copy is named after its last component).
func (r *copyRequest) validPath() bool {
	return strings.HasPrefix(r.Path, "/") && path.Clean(r.Path) == r.Path && r.Path != "/"
}

// copyFailure ends a copy stream with ERROR code.
type copyFailure struct {
	code string
	err  error
}

func (f *copyFailure) Error() string { return f.err.Error() }

func failed(code, format string, a ...any) error {
	return &copyFailure{code, fmt.Errorf(format, a...)}
}

var errCancelled = &copyFailure{"cancelled", errors.New("the copy was cancelled")}

// copyStream is one copy in flight. Its data travels as STDIN (COPY_IN) or STDOUT (COPY_OUT).
type copyStream struct {
	s   *session
	id  uint32
	out *window // COPY_OUT: the STDOUT window

	mu        sync.Mutex
	cond      sync.Cond
	queue     [][]byte // COPY_IN: STDIN frames not read yet
	head      []byte   // the rest of the frame being read
	eof       bool     // STDIN_CLOSE came
	cancelled bool     // SIGNAL or the session ended
	pending   int      // bytes read but not credited yet
}

func newCopyStream(s *session, id uint32) *copyStream {
	c := &copyStream{s: s, id: id, out: newWindow()}
	c.cond.L = &c.mu
	return c
}

func (c *copyStream) input(b []byte) {
	c.mu.Lock()
	if !c.eof && !c.cancelled {
		c.queue = append(c.queue, b)
	}
	c.mu.Unlock()
	c.cond.Signal()
}

func (c *copyStream) closeInput() {
	c.mu.Lock()
	c.eof = true
	c.mu.Unlock()
	c.cond.Signal()
}

// cancel: a SIGNAL (any) or the end of the session stops the copy where it is.
func (c *copyStream) cancel() {
	c.mu.Lock()
	c.cancelled = true
	c.queue = nil
	c.mu.Unlock()
	c.cond.Signal()
	c.out.close()
}

// Read serves the archive of a COPY_IN from the STDIN frames, granting credit for what it
// consumed (batched like the exec stdin feed).
func (c *copyStream) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.head) == 0 {
		if c.cancelled {
			return 0, errCancelled
		}
		if len(c.queue) > 0 {
			c.head, c.queue[0] = c.queue[0], nil
			c.queue = c.queue[1:]
			continue
		}
		c.flushCredit()
		if c.eof {
			return 0, io.EOF
		}
		c.cond.Wait()
	}
	n := copy(p, c.head)
	c.head = c.head[n:]
	c.pending += n
	if c.pending >= 64<<10 {
		c.flushCredit()
	}
	return n, nil
}

func (c *copyStream) flushCredit() {
	if c.pending > 0 {
		c.s.sendCredit(c.id, 0, c.pending)
		c.pending = 0
	}
}

// Write sends a COPY_OUT's archive as STDOUT frames within the window.
func (c *copyStream) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n := c.out.take(minInt(len(p)-written, maxDataChunk))
		if n == 0 {
			return written, errCancelled
		}
		bp := bufPool.Get().(*[]byte)
		copy(*bp, p[written:written+n])
		if !c.s.send(outFrame{typ: tStdout, stream: c.id, payload: (*bp)[:n], buf: bp}) {
			return written, errCancelled
		}
		written += n
	}
	return written, nil
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// finish unregisters the stream, then sends its last frame: EXIT 0, or ERROR.
func (c *copyStream) finish(err error) {
	c.s.mu.Lock()
	if c.s.copies[c.id] == c {
		delete(c.s.copies, c.id)
	}
	c.s.mu.Unlock()
	if err == nil {
		c.s.sendJSON(tExit, c.id, struct {
			ExitCode int `json:"exitCode"`
		}{0})
		return
	}
	var f *copyFailure
	if !errors.As(err, &f) {
		f = &copyFailure{"copy_failed", err}
	}
	c.s.sendError(c.id, f.code, "%v", f.err)
}

// startCopy checks the request and the path before anything is streamed, so a missing path
// is answered at once (a host that already sent data gets no credit for it and stops).
func (s *session) startCopy(f Frame, copyIn bool) {
	var req copyRequest
	if err := json.Unmarshal(f.Payload, &req); err != nil || f.Stream == 0 || !req.validPath() {
		s.sendError(f.Stream, "bad_message", "bad copy request: path must be absolute, clean and not /")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.execs[f.Stream] != nil || s.copies[f.Stream] != nil {
		s.sendError(f.Stream, "stream_in_use", "stream %d is in use", f.Stream)
		return
	}
	s.claimStream(f.Stream)
	c := newCopyStream(s, f.Stream)
	var run func() error
	var err error
	if copyIn {
		run, err = c.prepareIn(&req)
	} else {
		run, err = c.prepareOut(&req)
	}
	if err != nil {
		var cf *copyFailure
		if !errors.As(err, &cf) {
			cf = &copyFailure{"copy_failed", err}
		}
		s.sendError(f.Stream, cf.code, "%v", cf.err)
		return
	}
	s.copies[f.Stream] = c
	go func() { c.finish(run()) }()
}

func notFoundOr(err error, p string) error {
	if errors.Is(err, fs.ErrNotExist) {
		return failed("not_found", "%s: no such file or directory", p)
	}
	if errors.Is(err, syscall.ENOTDIR) {
		return failed("not_found", "%s: a parent is not a directory", p)
	}
	return err
}

// ---- COPY_OUT ----

func (c *copyStream) prepareOut(req *copyRequest) (func() error, error) {
	root := req.Path
	if req.Follow {
		resolved, err := filepath.EvalSymlinks(root)
		if err != nil {
			return nil, notFoundOr(err, req.Path)
		}
		root = resolved
	}
	info, err := os.Lstat(root)
	if err != nil {
		return nil, notFoundOr(err, req.Path)
	}
	if !copyable(info.Mode()) {
		return nil, failed("copy_failed", "%s: not a regular file, directory or symlink", req.Path)
	}
	name := path.Base(req.Path)
	return func() error {
		// Batched into full frames: a tree of small files is mostly 512-byte headers.
		bw := bufio.NewWriterSize(c, maxDataChunk)
		tw := tar.NewWriter(bw)
		err := filepath.Walk(root, func(p string, info fs.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			return c.writeEntry(tw, p, path.Join(name, filepath.ToSlash(rel)), info)
		})
		if err == nil {
			err = tw.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		if err == nil {
			c.s.send(outFrame{typ: tStdout, stream: c.id})
		}
		return err
	}, nil
}

// copyable: what a copy carries. Devices, fifos and sockets are skipped inside a tree (the
// host would refuse them) and refused as the thing asked for.
func copyable(m fs.FileMode) bool {
	return m.IsRegular() || m.IsDir() || m&fs.ModeSymlink != 0
}

func (c *copyStream) writeEntry(tw *tar.Writer, p, name string, info fs.FileInfo) error {
	if !copyable(info.Mode()) {
		return nil
	}
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	// Names mean nothing on the host; numeric ids are kept for the record.
	hdr.Uname, hdr.Gname = "", ""
	hdr.Format = tar.FormatPAX
	if info.IsDir() {
		hdr.Name += "/"
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// Exactly the size in the header: a file that shrinks while it is read fails the copy
	// (its archive would be corrupt); bytes appended meanwhile are left out.
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		if err == io.EOF {
			return failed("copy_failed", "%s changed while it was copied", p)
		}
		return err
	}
	return nil
}

// ---- COPY_IN ----

func (c *copyStream) prepareIn(req *copyRequest) (func() error, error) {
	// As cp: into an existing directory, else as that name (its parent must exist).
	dir, name := req.Path, ""
	if st, err := os.Stat(req.Path); req.Exact || err != nil || !st.IsDir() {
		dir, name = path.Dir(req.Path), path.Base(req.Path)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, notFoundOr(err, dir)
	}
	if !st.IsDir() {
		return nil, failed("not_found", "%s: not a directory", dir)
	}
	return func() error {
		err := extract(tar.NewReader(c), dir, name)
		if err != nil {
			return err
		}
		// The host ends the stream after the archive; read to its end so it gets its credit.
		_, err = io.Copy(io.Discard, c)
		return err
	}, nil
}

type dirTimes struct {
	path  string
	mode  fs.FileMode
	mtime time.Time
}

// extract writes the archive under dir. Its entries share one top component, replaced by
// `rename` when set. Existing files are replaced (unlinked first, as tar does), existing
// directories are merged into.
func extract(tr *tar.Reader, dir, rename string) error {
	var top string
	var dirs []dirTimes
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		target, err := entryPath(hdr.Name, dir, rename, &top)
		if err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode & 0o777)
		if hdr.Mode&0o4000 != 0 {
			mode |= fs.ModeSetuid
		}
		if hdr.Mode&0o2000 != 0 {
			mode |= fs.ModeSetgid
		}
		if hdr.Mode&0o1000 != 0 {
			mode |= fs.ModeSticky
		}
		if hdr.Typeflag == tar.TypeRegA {
			hdr.Typeflag = tar.TypeReg
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if st, err := os.Lstat(target); err == nil && !st.IsDir() {
				return failed("copy_failed", "%s exists and is not a directory", target)
			}
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			// Modes last: a read-only directory must first take its children.
			dirs = append(dirs, dirTimes{target, mode, hdr.ModTime})
		case tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
			if err := removeNonDir(target); err != nil {
				return err
			}
			switch hdr.Typeflag {
			case tar.TypeReg:
				err = writeFile(target, tr, mode, hdr.ModTime)
			case tar.TypeSymlink:
				err = os.Symlink(hdr.Linkname, target)
			default:
				var source string
				if source, err = entryPath(hdr.Linkname, dir, rename, &top); err == nil {
					err = os.Link(source, target)
				}
			}
			if err != nil {
				return err
			}
		default:
			return failed("copy_failed", "%s: unsupported entry type %q", hdr.Name, hdr.Typeflag)
		}
	}
	if top == "" {
		return failed("copy_failed", "the archive is empty")
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chmod(dirs[i].path, dirs[i].mode)
		os.Chtimes(dirs[i].path, dirs[i].mtime, dirs[i].mtime)
	}
	return nil
}

// entryPath maps an archive name to a path under dir: relative, no "..", one shared top
// component (renamed to `rename` when set).
func entryPath(name, dir, rename string, top *string) (string, error) {
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	if name == "" || path.IsAbs(name) || clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return "", failed("copy_failed", "%q: unsafe name in the archive", name)
	}
	first, rest, _ := strings.Cut(clean, "/")
	if *top == "" {
		*top = first
	} else if first != *top {
		return "", failed("copy_failed", "%q: the archive has more than one top entry", name)
	}
	if rename != "" {
		first = rename
	}
	target := filepath.Join(dir, first, rest)
	// Never through a symlink, whether the archive made it or it was there: what the archive
	// names is created where it says, inside the copy.
	for p := filepath.Dir(target); len(p) > len(dir); p = filepath.Dir(p) {
		if st, err := os.Lstat(p); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return "", failed("copy_failed", "%q: %s is a symlink", name, p)
		}
	}
	return target, nil
}

func removeNonDir(p string) error {
	st, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return failed("copy_failed", "%s: is a directory", p)
	}
	return os.Remove(p)
}

func writeFile(p string, r io.Reader, mode fs.FileMode, mtime time.Time) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		// Explicitly: the mode asked for, not one narrowed by the umask.
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(p, mtime, mtime)
	}
	return err
}
