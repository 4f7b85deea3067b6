package main

// The cloud kernel builds virtio as modules. The initramfs carries just the ones we need and
// an order file (one path per line, dependencies first) so no modprobe logic is needed here.

import (
	"os"
	"strings"
	"syscall"
	"unsafe"
)

const sysFinitModule = 313 // amd64

func loadModules(orderFile string) (int, error) {
	data, err := os.ReadFile(orderFile)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range strings.Fields(string(data)) {
		if err := finitModule(p); err != nil {
			return n, &os.PathError{Op: "finit_module", Path: p, Err: err}
		}
		n++
	}
	return n, nil
}

func finitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	params := []byte{0}
	_, _, e := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
	if e != 0 && e != syscall.EEXIST {
		return e
	}
	return nil
}
