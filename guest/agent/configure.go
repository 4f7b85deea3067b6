package main

// CONFIGURE: the box's network (static IPv4 address, default route, resolv.conf) and its
// volumes (virtiofs tags, directory or single-file). The steps run against a sysOps so tests
// drive them with fakes and a temporary root directory; the VM uses realSysOps.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// GuestConfig is the CONFIGURE payload (PROTOCOL.md).
type GuestConfig struct {
	Network *NetworkConfig `json:"network"`
	Mounts  []MountConfig  `json:"mounts"`
}

type NetworkConfig struct {
	Address      string   `json:"address"`
	PrefixLength int      `json:"prefixLength"`
	Gateway      string   `json:"gateway"`
	DNS          []string `json:"dns"`
	MTU          int      `json:"mtu"`
}

type MountConfig struct {
	Tag      string `json:"tag"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"readOnly"`
	File     string `json:"file"`
}

// volumesDir holds the virtiofs mounts behind single-file volumes.
const volumesDir = "/run/boxlite/volumes"

// sysOps is every side effect of configure. Paths given to it are guest paths already joined
// with root.
type sysOps struct {
	root            string // prefix of every guest path: "" in the VM, a temp dir in tests
	hostname        string
	findEther       func() (name string, index int, err error)
	setMTU          func(name string, mtu int) error
	linkUp          func(name string) error
	addAddr         func(index int, addr netip.Addr, prefix int) error
	addDefaultRoute func(index int, gw netip.Addr) error
	announce        func(index int, addr netip.Addr) error
	mount           func(src, target, fstype string, flags uintptr, data string) error
	loadFsModules   func() error // fuse + virtiofs, loaded on the first mount
}

// parsedNet is a validated NetworkConfig.
type parsedNet struct {
	addr, gw netip.Addr
	prefix   int
	dns      []netip.Addr
	mtu      int
}

func (n *NetworkConfig) parse() (*parsedNet, error) {
	p := &parsedNet{prefix: n.PrefixLength, mtu: n.MTU}
	if n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535) {
		return nil, fmt.Errorf("network: bad mtu %d (68-65535, or 0 to keep the default)", n.MTU)
	}
	var err error
	if p.addr, err = netip.ParseAddr(n.Address); err != nil || !p.addr.Is4() {
		return nil, fmt.Errorf("network: bad IPv4 address %q", n.Address)
	}
	if n.PrefixLength < 1 || n.PrefixLength > 32 {
		return nil, fmt.Errorf("network: bad prefix length %d", n.PrefixLength)
	}
	if n.Gateway != "" {
		if p.gw, err = netip.ParseAddr(n.Gateway); err != nil || !p.gw.Is4() {
			return nil, fmt.Errorf("network: bad gateway %q", n.Gateway)
		}
	}
	for _, d := range n.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, fmt.Errorf("network: bad dns server %q", d)
		}
		p.dns = append(p.dns, a)
	}
	return p, nil
}

// validate checks a mount before anything is done to the guest.
func (m *MountConfig) validate() error {
	if m.Tag == "" || strings.ContainsAny(m.Tag, "/\x00") || m.Tag == "." || m.Tag == ".." {
		return fmt.Errorf("mount %q: bad tag %q", m.Path, m.Tag)
	}
	if !path.IsAbs(m.Path) || strings.ContainsRune(m.Path, 0) || path.Clean(m.Path) == "/" {
		return fmt.Errorf("mount %q (tag %s): path must be absolute and not /", m.Path, m.Tag)
	}
	if m.File != "" && (strings.ContainsAny(m.File, "/\x00") || m.File == "." || m.File == "..") {
		return fmt.Errorf("mount %s (tag %s): bad file name %q", m.Path, m.Tag, m.File)
	}
	return nil
}

// validate checks the whole config; configure calls it first so a bad config changes nothing.
func (c *GuestConfig) validate() (*parsedNet, error) {
	var pn *parsedNet
	if c.Network != nil {
		var err error
		if pn, err = c.Network.parse(); err != nil {
			return nil, err
		}
	}
	for i := range c.Mounts {
		if err := c.Mounts[i].validate(); err != nil {
			return nil, err
		}
	}
	return pn, nil
}

// configure applies c. The error message names the failing step or mount path.
func configure(c *GuestConfig, ops *sysOps) error {
	pn, err := c.validate()
	if err != nil {
		return err
	}
	if err := writeHostsIfMissing(ops.root, ops.hostname); err != nil {
		return fmt.Errorf("/etc/hosts: %w", err)
	}
	if pn != nil {
		if err := configureNetwork(pn, ops); err != nil {
			return err
		}
	}
	if len(c.Mounts) > 0 {
		if err := ops.loadFsModules(); err != nil {
			return fmt.Errorf("mounts: load the virtiofs modules: %w", err)
		}
	}
	for i := range c.Mounts {
		if err := mountVolume(&c.Mounts[i], ops); err != nil {
			return err
		}
	}
	return nil
}

func configureNetwork(n *parsedNet, ops *sysOps) error {
	name, index, err := ops.findEther()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if n.mtu != 0 {
		if err := ops.setMTU(name, n.mtu); err != nil {
			return fmt.Errorf("network: mtu %d on %s: %w", n.mtu, name, err)
		}
	}
	if err := ops.linkUp(name); err != nil {
		return fmt.Errorf("network: bring %s up: %w", name, err)
	}
	if err := ops.addAddr(index, n.addr, n.prefix); err != nil {
		return fmt.Errorf("network: address %s/%d on %s: %w", n.addr, n.prefix, name, err)
	}
	if n.gw.IsValid() {
		if err := ops.addDefaultRoute(index, n.gw); err != nil {
			return fmt.Errorf("network: default route via %s on %s: %w", n.gw, name, err)
		}
	}
	if err := writeResolvConf(ops.root, n.dns); err != nil {
		return fmt.Errorf("network: /etc/resolv.conf: %w", err)
	}
	if err := ops.announce(index, n.addr); err != nil {
		return fmt.Errorf("network: announce %s on %s: %w", n.addr, name, err)
	}
	return nil
}

func mountVolume(m *MountConfig, ops *sysOps) error {
	var flags uintptr
	if m.ReadOnly {
		flags |= syscall.MS_RDONLY
	}
	target := filepath.Join(ops.root, m.Path)
	if m.File == "" {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("mount %s (tag %s): %w", m.Path, m.Tag, err)
		}
		if err := ops.mount(m.Tag, target, "virtiofs", flags, ""); err != nil {
			return fmt.Errorf("mount %s (tag %s): %w%s", m.Path, m.Tag, err, tagHint(err))
		}
		return nil
	}
	dir := filepath.Join(ops.root, volumesDir, m.Tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount %s (tag %s): %w", m.Path, m.Tag, err)
	}
	if err := ops.mount(m.Tag, dir, "virtiofs", flags, ""); err != nil {
		return fmt.Errorf("mount %s (tag %s at %s): %w%s", m.Path, m.Tag, path.Join(volumesDir, m.Tag), err, tagHint(err))
	}
	if err := ensureFile(target); err != nil {
		return fmt.Errorf("mount %s (tag %s): %w", m.Path, m.Tag, err)
	}
	src := filepath.Join(dir, m.File)
	if err := ops.mount(src, target, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount %s (file %s of tag %s): %w", m.Path, m.File, m.Tag, err)
	}
	if m.ReadOnly {
		// A bind mount ignores MS_RDONLY; the remount makes this mount read-only too.
		if err := ops.mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("mount %s: read-only: %w", m.Path, err)
		}
	}
	return nil
}

// tagHint explains the EINVAL virtiofs gives for a tag no device has.
func tagHint(err error) string {
	if errors.Is(err, syscall.EINVAL) {
		return " (no virtiofs device with this tag?)"
	}
	return ""
}

// ensureFile creates an empty file (and its parents) at p unless something exists there.
func ensureFile(p string) error {
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// writeResolvConf replaces /etc/resolv.conf (a symlink included: images often point it into
// /run/systemd) with one nameserver line per server. Without servers it is left alone.
func writeResolvConf(root string, dns []netip.Addr) error {
	if len(dns) == 0 {
		return nil
	}
	var b strings.Builder
	for _, d := range dns {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	return replaceFile(filepath.Join(root, "/etc/resolv.conf"), b.String())
}

// writeHostsIfMissing gives an image without /etc/hosts the usual localhost entries and the
// hostname; an existing file (or a dangling symlink) is the image's choice and left alone.
func writeHostsIfMissing(root, hostname string) error {
	p := filepath.Join(root, "/etc/hosts")
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	content := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if hostname != "" && hostname != "localhost" {
		content += "127.0.1.1\t" + hostname + "\n"
	}
	return replaceFile(p, content)
}

// replaceFile writes content to p through a temporary file and a rename, so a symlink at p
// is replaced rather than followed.
func replaceFile(p, content string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".boxlite-tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// findEthernet returns the first non-loopback ethernet interface under sysDir
// (/sys/class/net), by name order, so eth0 comes before eth1.
func findEthernet(sysDir string) (string, int, error) {
	entries, err := os.ReadDir(sysDir)
	if err != nil {
		return "", 0, err
	}
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if name == "lo" {
			continue
		}
		typ, err := os.ReadFile(filepath.Join(sysDir, name, "type"))
		if err != nil || strings.TrimSpace(string(typ)) != "1" { // ARPHRD_ETHER
			continue
		}
		idx, err := os.ReadFile(filepath.Join(sysDir, name, "ifindex"))
		if err != nil {
			continue
		}
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(string(idx)), &n); err != nil || n <= 0 {
			continue
		}
		return name, n, nil
	}
	return "", 0, errors.New("no ethernet interface")
}

// realSysOps performs configure's steps on the running guest.
func realSysOps(hostname string, loadFsModules func() error) *sysOps {
	return &sysOps{
		hostname:      hostname,
		loadFsModules: loadFsModules,
		findEther: func() (string, int, error) {
			// virtio_net probes when its module loads; the short wait covers a late device.
			deadline := time.Now().Add(2 * time.Second)
			for {
				name, index, err := findEthernet("/sys/class/net")
				if err == nil || time.Now().After(deadline) {
					return name, index, err
				}
				time.Sleep(10 * time.Millisecond)
			}
		},
		setMTU: ifSetMTU,
		linkUp: ifUp,
		addAddr: func(index int, addr netip.Addr, prefix int) error {
			return nlRequest(func(seq uint32) []byte { return newAddrMsg(seq, index, addr, prefix) })
		},
		addDefaultRoute: func(index int, gw netip.Addr) error {
			return nlRequest(func(seq uint32) []byte { return newDefaultRouteMsg(seq, index, gw) })
		},
		announce: announce,
		mount:    syscall.Mount,
	}
}

// configureOnce applies the first config it is given and answers later calls (a host that
// reconnected after a channel error) without redoing anything: the same config succeeds
// again, the same failure repeats, a different config is refused. Sessions on two channels
// (virtio-serial and vsock) may call it at once: the second waits for the first.
func configureOnce(ops *sysOps) func(*GuestConfig) error {
	var mu sync.Mutex
	var applied []byte
	var result error
	return func(c *GuestConfig) error {
		mu.Lock()
		defer mu.Unlock()
		b, _ := json.Marshal(c)
		if applied != nil {
			if !bytes.Equal(b, applied) {
				return errors.New("the guest is already configured with a different config")
			}
			return result
		}
		applied, result = b, configure(c, ops)
		return result
	}
}
