package main

import (
	"strings"
	"testing"
)

func TestCmdline(t *testing.T) {
	c := parseCmdline("console=ttyS0 quiet boxlite.root=/dev/vdb boxlite.probe=1 boxlite.hostname= x=a=b\n")
	if c.get("boxlite.root", "/dev/vda") != "/dev/vdb" || c["boxlite.probe"] != "1" || c["x"] != "a=b" {
		t.Fatalf("%v", c)
	}
	if c.get("boxlite.port", "boxlite.agent") != "boxlite.agent" || c.get("boxlite.hostname", "boxlite") != "boxlite" {
		t.Fatalf("defaults: %v", c)
	}
}

func TestCmdlineVsockAndVirtio(t *testing.T) {
	for in, want := range map[string]uint32{"": 0, "boxlite.vsock=1024": 1024, "boxlite.vsock=4294967294": 4294967294} {
		if got, err := parseCmdline(in).vsockPort(); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"boxlite.vsock", "boxlite.vsock=", "boxlite.vsock=0", "boxlite.vsock=-1", "boxlite.vsock=0x400",
		"boxlite.vsock=4294967295", "boxlite.vsock=4294967296", "boxlite.vsock=1024x"} {
		if _, err := parseCmdline(bad).vsockPort(); err == nil || !strings.Contains(err.Error(), "boxlite.vsock") {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
	if !parseCmdline("boxlite.vsock.loopback=1").vsockLoopback() || parseCmdline("boxlite.vsock.loopback=yes").vsockLoopback() || parseCmdline("").vsockLoopback() {
		t.Error("boxlite.vsock.loopback=1")
	}
	if !parseCmdline("quiet boxlite.virtio=pci").virtioPCI() || parseCmdline("boxlite.virtio=mmio").virtioPCI() || parseCmdline("").virtioPCI() {
		t.Error("boxlite.virtio=pci")
	}
}
