package main

// One EXEC stream: a process in its own process group with stdin/stdout/stderr on pipes,
// flow-controlled output pumps, a stdin feeder that grants credit as it writes, and an EXIT
// sent only after the process is reaped and both output pipes reached end of file.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type execRequest struct {
	Argv      []string   `json:"argv"`
	Env       [][]string `json:"env"`
	Cwd       string     `json:"cwd"`
	UID       uint32     `json:"uid"`
	GID       uint32     `json:"gid"`
	User      string     `json:"user"`
	TimeoutMs int64      `json:"timeoutMs"`
	Tty       *ttySize   `json:"tty"`
}

func (r *execRequest) validate() error {
	if len(r.Argv) == 0 || r.Argv[0] == "" || r.TimeoutMs < 0 {
		return errors.New("bad request")
	}
	if r.Tty != nil && !r.Tty.valid() {
		return errors.New("bad tty size")
	}
	for _, kv := range r.Env {
		if len(kv) != 2 || kv[0] == "" || strings.ContainsRune(kv[0], '=') {
			return errors.New("bad env")
		}
	}
	return nil
}

type execution struct {
	s        *session
	id       uint32
	pid      int
	out      [2]*window  // stdout, stderr
	outPipes [2]*os.File // their read ends
	pty      *os.File    // the terminal's master, for a tty exec (else nil)
	stdin    *stdinFeed
	outputs  sync.WaitGroup
	mu       sync.Mutex
	finished bool // EXIT is being sent: the pid no longer names our group
	timedOut atomic.Bool
	detached atomic.Bool // its host is gone (THAW fresh): output is read and dropped
}

func startExec(s *session, id uint32, req *execRequest) (*execution, error) {
	who := identity{uid: req.UID, gid: req.GID, home: "/root"}
	if req.User != "" {
		var err error
		if who, err = resolveUser(req.User, "/etc/passwd", "/etc/group"); err != nil {
			return nil, err
		}
	}
	env := make([]string, 0, len(req.Env)+2)
	path, hasPath, hasHome := "", false, false
	for _, kv := range req.Env {
		env = append(env, kv[0]+"="+kv[1])
		switch kv[0] {
		case "PATH":
			path, hasPath = kv[1], true
		case "HOME":
			hasHome = true
		}
	}
	if !hasPath {
		path = defaultPath
		env = append(env, "PATH="+path)
	}
	if !hasHome {
		env = append(env, "HOME="+who.home)
	}
	cwd := req.Cwd
	if cwd == "" {
		cwd = "/"
	}
	prog, err := lookPath(req.Argv[0], path, cwd)
	if err != nil {
		return nil, err
	}

	var child, parent [3]*os.File
	defer func() {
		for _, f := range child {
			if f != nil {
				f.Close()
			}
		}
	}()
	sys := &syscall.SysProcAttr{Setpgid: true}
	var pty *os.File
	if req.Tty != nil {
		// One terminal for stdin, stdout and stderr; the process leads a new session with it as
		// its controlling terminal (its process group is still its pid).
		var slave *os.File
		if pty, slave, err = openPty(*req.Tty); err != nil {
			return nil, fmt.Errorf("%s: terminal: %w", req.Argv[0], err)
		}
		input, err := dupFile(pty)
		if err != nil {
			pty.Close()
			slave.Close()
			return nil, fmt.Errorf("%s: terminal: %w", req.Argv[0], err)
		}
		child = [3]*os.File{slave, nil, nil}
		parent = [3]*os.File{input, pty, nil}
		sys = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		for i := range child {
			r, w, err := os.Pipe()
			if err != nil {
				closeAll(parent[:])
				return nil, err
			}
			if i == 0 {
				child[i], parent[i] = r, w
			} else {
				child[i], parent[i] = w, r
				growPipe(r)
			}
		}
	}
	if who.uid != 0 || who.gid != 0 || len(who.groups) > 0 {
		sys.Credential = &syscall.Credential{Uid: who.uid, Gid: who.gid, Groups: who.groups}
	}
	files := []uintptr{child[0].Fd(), 0, 0}
	if pty != nil {
		files[1], files[2] = files[0], files[0]
	} else {
		files[1], files[2] = child[1].Fd(), child[2].Fd()
	}
	attr := &syscall.ProcAttr{
		Dir: cwd,
		Env: env,
		// Fd() also switches the child's ends to blocking mode, which the child expects.
		Files: files,
		Sys:   sys,
	}
	done := make(chan syscall.WaitStatus, 1)
	pid, err := theReaper.spawn(prog, req.Argv, attr, done)
	if err != nil {
		closeAll(parent[:])
		return nil, fmt.Errorf("%s: %w", req.Argv[0], err)
	}

	e := &execution{s: s, id: id, pid: pid, out: [2]*window{newWindow(), newWindow()},
		outPipes: [2]*os.File{parent[1], parent[2]}, pty: pty}
	e.stdin = newStdinFeed(e, parent[0])
	s.sendJSON(tStarted, id, struct {
		Pid int `json:"pid"`
	}{pid})
	e.outputs.Add(2)
	go e.pump(parent[1], tStdout, e.out[0])
	if pty != nil {
		// A terminal has one output stream: stderr ends at once.
		go func() {
			defer e.outputs.Done()
			e.s.send(outFrame{typ: tStderr, stream: e.id})
		}()
	} else {
		go e.pump(parent[2], tStderr, e.out[1])
	}
	go e.stdin.run()
	var timer *time.Timer
	if req.TimeoutMs > 0 {
		timer = time.AfterFunc(time.Duration(req.TimeoutMs)*time.Millisecond, func() {
			e.signal(int(syscall.SIGKILL), true)
		})
	}
	go e.wait(done, timer)
	return e, nil
}

// growPipe enlarges a pipe: fewer wakeups per MB streamed. Failure is harmless.
// (SyscallConn, unlike Fd, keeps the parent's end non-blocking.)
func growPipe(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETPIPE_SZ, 1<<20)
		})
	}
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// lookPath resolves argv[0] against the exec's own PATH, as seen from its cwd.
func lookPath(name, path, cwd string) (string, error) {
	if strings.ContainsRune(name, '/') {
		if err := checkExecutable(name, cwd); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if dir == "." {
			p = "./" + name
		}
		if checkExecutable(p, cwd) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH", name)
}

func checkExecutable(p, cwd string) error {
	if !filepath.IsAbs(p) {
		p = filepath.Join(cwd, p)
	}
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// pump copies one output pipe to the channel, reading only as much as the window allows so
// that a slow host makes the process block in write.
func (e *execution) pump(f *os.File, typ uint8, w *window) {
	defer e.outputs.Done()
	defer f.Close()
	for {
		n := w.take(maxDataChunk)
		if n == 0 {
			return // session over
		}
		bp := bufPool.Get().(*[]byte)
		k, err := f.Read((*bp)[:n])
		if k < n {
			w.giveBack(n - k)
		}
		if e.detached.Load() {
			// Nobody reads it: keep the process from blocking on a full pipe.
			bufPool.Put(bp)
			w.giveBack(k)
			if err != nil {
				return
			}
			continue
		}
		if k > 0 {
			if !e.s.send(outFrame{typ: typ, stream: e.id, payload: (*bp)[:k], buf: bp}) {
				return
			}
		} else {
			bufPool.Put(bp)
		}
		if err != nil {
			break
		}
	}
	e.s.send(outFrame{typ: typ, stream: e.id})
}

func (e *execution) wait(done <-chan syscall.WaitStatus, timer *time.Timer) {
	ws := <-done
	if timer != nil {
		timer.Stop()
	}
	e.outputs.Wait()
	e.mu.Lock()
	e.finished = true
	e.mu.Unlock()
	e.stdin.stop()
	e.s.mu.Lock()
	if e.s.execs[e.id] == e {
		delete(e.s.execs, e.id)
	}
	e.s.mu.Unlock()
	if e.detached.Load() {
		return
	}

	st := struct {
		ExitCode int  `json:"exitCode"`
		Signal   int  `json:"signal,omitempty"`
		TimedOut bool `json:"timedOut,omitempty"`
	}{ExitCode: ws.ExitStatus()}
	if ws.Signaled() {
		st.Signal = int(ws.Signal())
		st.ExitCode = 128 + st.Signal
		st.TimedOut = e.timedOut.Load() && ws.Signal() == syscall.SIGKILL
	}
	e.s.sendJSON(tExit, e.id, st)
}

// signal sends sig to the exec's process group until its EXIT is on its way.
func (e *execution) signal(sig int, timeout bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.finished {
		return
	}
	if timeout {
		e.timedOut.Store(true)
	}
	syscall.Kill(-e.pid, syscall.Signal(sig))
}

// detach keeps the process running for a host that will not read it: its output is dropped
// (the window refilled so a pump waiting for credit goes on), its stdin ends.
func (e *execution) detach() {
	e.detached.Store(true)
	for i := range e.out {
		e.out[i].credit(initialWindow)
	}
	e.stdin.closeInput()
}

// abort ends the exec when its session goes away: nobody is left to read its output.
// Closing the pipes also frees pumps blocked on a pipe that an escaped process holds open.
func (e *execution) abort() {
	e.signal(int(syscall.SIGKILL), false)
	for i := range e.out {
		e.out[i].close()
		e.outPipes[i].Close()
	}
	e.stdin.stop()
}

// stdinFeed queues STDIN frames and writes them into the process's stdin pipe, granting the
// host credit for what has been written (or dropped, once the process stopped reading).
type stdinFeed struct {
	e      *execution
	f      *os.File
	mu     sync.Mutex
	cond   sync.Cond
	queue  [][]byte
	closed bool // no more input: STDIN_CLOSE or the exec is over
	eof    bool // the host sent STDIN_CLOSE
	done   chan struct{}
}

func newStdinFeed(e *execution, f *os.File) *stdinFeed {
	q := &stdinFeed{e: e, f: f, done: make(chan struct{})}
	q.cond.L = &q.mu
	return q
}

func (q *stdinFeed) push(b []byte) {
	q.mu.Lock()
	if !q.closed {
		q.queue = append(q.queue, b)
	}
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *stdinFeed) closeInput() {
	q.mu.Lock()
	q.closed = true
	q.eof = true
	q.mu.Unlock()
	q.cond.Signal()
}

// stop drops pending input, unblocks a pending write and waits for the feeder to finish, so
// no CREDIT can follow the EXIT.
func (q *stdinFeed) stop() {
	q.mu.Lock()
	q.closed = true
	q.queue = nil
	q.mu.Unlock()
	q.cond.Signal()
	q.f.Close()
	<-q.done
}

func (q *stdinFeed) run() {
	defer close(q.done)
	defer q.f.Close()
	pending, broken := 0, false
	for {
		q.mu.Lock()
		for len(q.queue) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.queue) == 0 {
			eof := q.eof
			q.mu.Unlock()
			if q.e.pty != nil && eof && !broken {
				// A terminal has no end of input of its own: its EOF character (^D) is one.
				q.f.Write([]byte{4})
			}
			return
		}
		b := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		drained := len(q.queue) == 0
		q.mu.Unlock()

		if !broken {
			_, err := q.f.Write(b)
			broken = err != nil
		}
		pending += len(b)
		if pending >= 64<<10 || drained {
			q.e.s.sendCredit(q.e.id, 0, pending)
			pending = 0
		}
	}
}
