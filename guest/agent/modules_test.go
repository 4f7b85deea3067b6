package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBootOrders(t *testing.T) {
	for in, want := range map[string][]string{
		"console=ttyS0":      {"/lib/modules/order"},
		"boxlite.vsock=1024": {"/lib/modules/order", "/lib/modules/order.vsock"},
		"boxlite.vsock=1024 boxlite.vsock.loopback=1": {"/lib/modules/order", "/lib/modules/order.vsock", "/lib/modules/order.loopback"},
		"boxlite.vsock.loopback=1":                    {"/lib/modules/order"},
		"boxlite.vsock=1024 boxlite.vsock.loopback=0": {"/lib/modules/order", "/lib/modules/order.vsock"},
		"boxlite.virtio=pci":                          {"/lib/modules/order.pci", "/lib/modules/order"},
		"boxlite.virtio=pci boxlite.vsock=1024":       {"/lib/modules/order.pci", "/lib/modules/order", "/lib/modules/order.vsock"},
		"boxlite.virtio=mmio":                         {"/lib/modules/order"},
	} {
		if got := bootOrders(parseCmdline(in)); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

// The order files overlap (each lists all it needs, as build.sh writes them): every module
// is loaded once, in the order of its first appearance, and a missing file adds nothing.
func TestModuleListLoadsEachModuleOnce(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mods ...string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(strings.Join(mods, "\n")+"\n"), 0o644)
		return p
	}
	pci := write("order.pci", "/m/virtio_ring.ko", "/m/virtio.ko", "/m/virtio_pci.ko")
	boot := write("order", "/m/virtio_ring.ko", "/m/virtio.ko", "/m/virtio_mmio.ko", "/m/virtio_blk.ko")
	vsock := write("order.vsock", "/m/vsock.ko", "/m/virtio_ring.ko", "/m/virtio.ko", "/m/vmw_vsock_virtio_transport.ko")
	got, err := moduleList([]string{pci, boot, vsock, filepath.Join(dir, "missing")})
	want := []string{"/m/virtio_ring.ko", "/m/virtio.ko", "/m/virtio_pci.ko", "/m/virtio_mmio.ko", "/m/virtio_blk.ko",
		"/m/vsock.ko", "/m/vmw_vsock_virtio_transport.ko"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := moduleList([]string{boot}); err != nil || len(got) != 4 {
		t.Fatalf("boot alone: %v %v", got, err)
	}
}
