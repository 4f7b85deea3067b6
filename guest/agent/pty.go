package main

// Terminals for tty execs: a pseudo-terminal pair from the guest's devpts (mounted at boot
// with its own ptmx), sized as the host asked, and resized by RESIZE frames.

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

type ttySize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

func (t ttySize) valid() bool {
	return t.Rows >= 1 && t.Rows <= 0xffff && t.Cols >= 1 && t.Cols <= 0xffff
}

// openPty returns a master and its slave, the slave sized `size`.
func openPty(size ttySize) (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fail := func(e error) (*os.File, *os.File, error) {
		master.Close()
		return nil, nil, e
	}
	var unlock int32
	var number uint32
	err = control(master, func(fd uintptr) error {
		if err := ioctl(int(fd), syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
			return err
		}
		return ioctl(int(fd), syscall.TIOCGPTN, unsafe.Pointer(&number))
	})
	if err != nil {
		return fail(err)
	}
	if err := setWinsize(master, size); err != nil {
		return fail(err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", number), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	return master, slave, nil
}

// setWinsize sets the terminal's size; the kernel sends SIGWINCH to its foreground group.
func setWinsize(master *os.File, size ttySize) error {
	ws := struct{ rows, cols, x, y uint16 }{uint16(size.Rows), uint16(size.Cols), 0, 0}
	return control(master, func(fd uintptr) error {
		return ioctl(int(fd), syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
	})
}

// dupFile is a second descriptor for f (the stdin feeder closes its own when input ends).
func dupFile(f *os.File) (*os.File, error) {
	var dup int
	err := control(f, func(fd uintptr) error {
		var e error
		dup, e = syscall.Dup(int(fd))
		return e
	})
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(dup)
	return os.NewFile(uintptr(dup), f.Name()), nil
}

// control runs f on the descriptor without switching it to blocking mode (as Fd() would).
func control(file *os.File, f func(fd uintptr) error) error {
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var inner error
	if err := rc.Control(func(fd uintptr) { inner = f(fd) }); err != nil {
		return err
	}
	return inner
}

// resize applies a RESIZE frame to a tty exec; other execs ignore it.
func (e *execution) resize(size ttySize) {
	if e.pty != nil {
		setWinsize(e.pty, size)
	}
}
