package main

import "sync"

// window is the send side of one flow-controlled channel: the sender may have at most
// initialWindow bytes that the receiver has not credited back yet.
type window struct {
	mu     sync.Mutex
	cond   sync.Cond
	avail  int64
	closed bool
}

func newWindow() *window {
	w := &window{avail: initialWindow}
	w.cond.L = &w.mu
	return w
}

// take blocks until some window is available and reserves up to max bytes of it.
// It returns 0 once the window is closed.
func (w *window) take(max int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.avail <= 0 && !w.closed {
		w.cond.Wait()
	}
	if w.closed {
		return 0
	}
	n := int64(max)
	if n > w.avail {
		n = w.avail
	}
	w.avail -= n
	return int(n)
}

// giveBack returns the unused part of a reservation.
func (w *window) giveBack(n int) { w.credit(uint32(n)) }

func (w *window) credit(n uint32) {
	w.mu.Lock()
	w.avail += int64(n)
	w.mu.Unlock()
	w.cond.Broadcast()
}

func (w *window) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cond.Broadcast()
}
