package main

// As PID 1 the agent inherits every orphan, so a single reaper owns wait4(-1): it hands the
// status of a pid we started to its owner and silently reaps everything else. os/exec's Wait
// would race with it, so processes are started with syscall.ForkExec under the reaper's lock.

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

type reaper struct {
	mu     sync.Mutex
	owners map[int]chan<- syscall.WaitStatus
}

var theReaper = startReaper()

func startReaper() *reaper {
	r := &reaper{owners: map[int]chan<- syscall.WaitStatus{}}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	go func() {
		for range sigs {
			r.reap()
		}
	}()
	return r
}

func (r *reaper) reap() {
	// Held across wait4 so a pid is never reaped between ForkExec and its registration.
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.owners[pid]; ok {
			delete(r.owners, pid)
			ch <- ws // buffered: never blocks
		}
	}
}

// spawn starts a process and registers done (capacity >= 1) to receive its exit status.
func (r *reaper) spawn(path string, argv []string, attr *syscall.ProcAttr, done chan<- syscall.WaitStatus) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err == nil {
		r.owners[pid] = done
	}
	return pid, err
}
