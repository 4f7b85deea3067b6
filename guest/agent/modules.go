package main

// The cloud kernel builds virtio as modules. The initramfs carries just the ones we need and
// order files (one path per line, dependencies first) so no modprobe logic is needed here:
// /lib/modules/order is loaded at boot, /lib/modules/order.volumes (fuse, virtiofs: fuse.ko
// alone costs more than all the virtio modules under TCG) only when a CONFIGURE has mounts.
// order.pci (virtio_pci), order.vsock (vsock and its virtio transport) and order.loopback
// (vsock's loopback transport, tests only) are loaded at boot only when the command line asks
// for them: QEMU microvm needs none of them.
// Each order file lists all its dependencies, so the lists overlap: a module is loaded once.

import (
	"os"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

const sysFinitModule = 313 // amd64

// bootOrders are the order files to load at boot for this command line, in order.
func bootOrders(c cmdline) []string {
	var files []string
	if c.virtioPCI() {
		files = append(files, "/lib/modules/order.pci") // the transport of every other device
	}
	files = append(files, "/lib/modules/order")
	if c["boxlite.vsock"] != "" {
		files = append(files, "/lib/modules/order.vsock")
		if c.vsockLoopback() {
			files = append(files, "/lib/modules/order.loopback")
		}
	}
	return files
}

// moduleList is the modules of the order files in order, each path once (a missing file is
// an empty list).
func moduleList(orderFiles []string) ([]string, error) {
	var paths []string
	seen := map[string]bool{}
	for _, file := range orderFiles {
		ps, err := readOrder(file)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
		}
	}
	return paths, nil
}

func loadModules(orderFiles []string) (int, error) {
	paths, err := moduleList(orderFiles)
	if err != nil {
		return 0, err
	}
	for i, p := range paths {
		f, err := os.Open(p)
		if err == nil {
			err = finitModule(f)
			f.Close()
		}
		if err != nil {
			return i, &os.PathError{Op: "finit_module", Path: p, Err: err}
		}
	}
	return len(paths), nil
}

func readOrder(orderFile string) ([]string, error) {
	data, err := os.ReadFile(orderFile)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return strings.Fields(string(data)), err
}

func finitModule(f *os.File) error {
	params := []byte{0}
	_, _, e := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
	if e != 0 && e != syscall.EEXIST {
		return e
	}
	return nil
}

// deferredModules are opened while the initramfs is still there (switchRoot deletes /lib)
// and loaded through those descriptors on first use.
type deferredModules struct {
	mu    sync.Mutex
	files []*os.File
	err   error
}

func openDeferredModules(orderFile string) (*deferredModules, error) {
	paths, err := readOrder(orderFile)
	if err != nil {
		return nil, err
	}
	d := &deferredModules{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			d.closeAll()
			return nil, err
		}
		d.files = append(d.files, f)
	}
	return d, nil
}

// load loads the modules once; later calls return the first result.
func (d *deferredModules) load() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.files) > 0 && d.err == nil {
		f := d.files[0]
		if err := finitModule(f); err != nil {
			d.err = &os.PathError{Op: "finit_module", Path: f.Name(), Err: err}
			break
		}
		f.Close()
		d.files = d.files[1:]
	}
	return d.err
}

func (d *deferredModules) closeAll() {
	for _, f := range d.files {
		f.Close()
	}
	d.files = nil
}
