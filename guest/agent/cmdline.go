package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cmdline holds the key=value words of /proc/cmdline (the agent's only configuration).
type cmdline map[string]string

func parseCmdline(s string) cmdline {
	c := cmdline{}
	for _, w := range strings.Fields(s) {
		k, v, _ := strings.Cut(w, "=")
		c[k] = v
	}
	return c
}

func readCmdline() cmdline {
	b, _ := os.ReadFile("/proc/cmdline")
	return parseCmdline(string(b))
}

func (c cmdline) get(key, def string) string {
	if v, ok := c[key]; ok && v != "" {
		return v
	}
	return def
}

// vsockPort is the port of `boxlite.vsock=<port>` (decimal): the driver gives a virtio-vsock
// device and connects to the agent there. 0 means no key: virtio-serial only.
func (c cmdline) vsockPort() (uint32, error) {
	v, ok := c["boxlite.vsock"]
	if !ok {
		return 0, nil
	}
	p, err := strconv.ParseUint(v, 10, 32)
	// VMADDR_PORT_ANY (2^32-1) is not a port one can connect to.
	if err != nil || p == 0 || p == 0xffffffff {
		return 0, fmt.Errorf("boxlite.vsock=%q: want a port number (1 to 4294967294)", v)
	}
	return uint32(p), nil
}

// vsockLoopback reports `boxlite.vsock.loopback=1`: processes in the guest may connect to the
// agent through the loopback transport (CID 1). For tests only: a session runs anything as root.
func (c cmdline) vsockLoopback() bool { return c["boxlite.vsock.loopback"] == "1" }

// virtioPCI reports `boxlite.virtio=pci`: the driver's virtio devices sit on PCI (not MMIO),
// so virtio_pci is loaded first.
func (c cmdline) virtioPCI() bool { return c["boxlite.virtio"] == "pci" }
