package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fakeOps records configure's system calls; the file side effects happen in a temp root.
type fakeOps struct {
	calls   []string
	failOn  string // a call prefix that fails with EIO
	noEther bool
}

func (f *fakeOps) record(c string) error {
	f.calls = append(f.calls, c)
	if f.failOn != "" && strings.HasPrefix(c, f.failOn) {
		return syscall.EIO
	}
	return nil
}

func (f *fakeOps) ops(root string) *sysOps {
	strip := func(p string) string {
		if r := strings.TrimPrefix(p, root); r != p {
			return "ROOT" + r
		}
		return p
	}
	return &sysOps{
		root:     root,
		hostname: "box1",
		findEther: func() (string, int, error) {
			if f.noEther {
				return "", 0, errors.New("no ethernet interface")
			}
			return "eth0", 2, f.record("find")
		},
		setMTU: func(name string, mtu int) error { return f.record(fmt.Sprintf("mtu %s %d", name, mtu)) },
		linkUp: func(name string) error { return f.record("up " + name) },
		addAddr: func(i int, a netip.Addr, p int) error {
			return f.record(fmt.Sprintf("addr %d %s/%d", i, a, p))
		},
		addDefaultRoute: func(i int, gw netip.Addr) error { return f.record(fmt.Sprintf("route %d %s", i, gw)) },
		announce:        func(i int, a netip.Addr) error { return f.record(fmt.Sprintf("announce %d %s", i, a)) },
		loadFsModules:   func() error { return f.record("modules") },
		mount: func(src, target, fstype string, flags uintptr, data string) error {
			return f.record(fmt.Sprintf("mount %s %s %s %#x", strip(src), strip(target), fstype, flags))
		},
	}
}

func parseConfig(t *testing.T, s string) *GuestConfig {
	t.Helper()
	var c GuestConfig
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		t.Fatal(err)
	}
	return &c
}

const fullConfig = `{
  "network": { "address": "10.0.2.15", "prefixLength": 24, "mtu": 65520, "gateway": "10.0.2.2", "dns": ["10.0.2.3", "fd00::3"] },
  "mounts": [
    { "tag": "v0", "path": "/mnt/data", "readOnly": true },
    { "tag": "v1", "path": "/srv/my data", "readOnly": false, "future": 1 },
    { "tag": "v2", "path": "/etc/app/config.json", "readOnly": true, "file": "config.json" }
  ],
  "unknown": true
}`

func TestConfigureAppliesEverythingInOrder(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	// Images often link resolv.conf into /run: it must be replaced, not followed.
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf"))
	f := &fakeOps{}
	if err := configure(parseConfig(t, fullConfig), f.ops(root)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"find", "mtu eth0 65520", "up eth0", "addr 2 10.0.2.15/24", "route 2 10.0.2.2", "announce 2 10.0.2.15", "modules",
		"mount v0 ROOT/mnt/data virtiofs 0x1",
		"mount v1 ROOT/srv/my data virtiofs 0x0",
		"mount v2 ROOT/run/boxlite/volumes/v2 virtiofs 0x1",
		"mount ROOT/run/boxlite/volumes/v2/config.json ROOT/etc/app/config.json  0x1000",
		"mount  ROOT/etc/app/config.json  0x1021",
	}
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
	for _, d := range []string{"mnt/data", "srv/my data", "run/boxlite/volumes/v2"} {
		if st, err := os.Stat(filepath.Join(root, d)); err != nil || !st.IsDir() {
			t.Errorf("%s: not a directory (%v)", d, err)
		}
	}
	if st, err := os.Lstat(filepath.Join(root, "etc/app/config.json")); err != nil || !st.Mode().IsRegular() || st.Size() != 0 {
		t.Errorf("bind target: %v %v", st, err)
	}
	st, err := os.Lstat(filepath.Join(root, "etc/resolv.conf"))
	if err != nil || !st.Mode().IsRegular() {
		t.Fatalf("resolv.conf is not a regular file: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); string(b) != "nameserver 10.0.2.3\nnameserver fd00::3\n" {
		t.Errorf("resolv.conf: %q", b)
	}
	b, _ := os.ReadFile(filepath.Join(root, "etc/hosts"))
	if !strings.Contains(string(b), "127.0.0.1\tlocalhost\n") || !strings.Contains(string(b), "\tbox1\n") {
		t.Errorf("hosts: %q", b)
	}
}

func TestConfigureKeepsExistingFiles(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("mine\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("old\n"), 0o644)
	os.WriteFile(filepath.Join(root, "target"), []byte("keep"), 0o600)
	f := &fakeOps{}
	c := `{"network":{"address":"192.168.7.2","prefixLength":32,"gateway":"","dns":[]},
	       "mounts":[{"tag":"t","path":"/target","readOnly":false,"file":"f"}]}`
	if err := configure(parseConfig(t, c), f.ops(root)); err != nil {
		t.Fatal(err)
	}
	// No gateway: no route; no dns: resolv.conf untouched; existing hosts and target kept.
	if strings.Contains(strings.Join(f.calls, ","), "route") {
		t.Errorf("calls: %v", f.calls)
	}
	for p, want := range map[string]string{"etc/hosts": "mine\n", "etc/resolv.conf": "old\n", "target": "keep"} {
		if b, _ := os.ReadFile(filepath.Join(root, p)); string(b) != want {
			t.Errorf("%s: %q", p, b)
		}
	}
}

func TestConfigureWithoutNetworkOrMounts(t *testing.T) {
	f := &fakeOps{}
	if err := configure(parseConfig(t, `{"mounts":[]}`), f.ops(t.TempDir())); err != nil || len(f.calls) != 0 {
		t.Fatalf("%v %v", err, f.calls)
	}
}

func TestConfigureErrorsNameTheStep(t *testing.T) {
	cases := []struct{ fail, want string }{
		{"up", "network: bring eth0 up: input/output error"},
		{"addr", "network: address 10.0.2.15/24 on eth0"},
		{"route", "network: default route via 10.0.2.2 on eth0"},
		{"modules", "mounts: load the virtiofs modules: input/output error"},
		{"mount v1", "mount /srv/my data (tag v1)"},
		{"mount v2", "mount /etc/app/config.json (tag v2 at /run/boxlite/volumes/v2)"},
		{"mount ROOT/run", "mount /etc/app/config.json (file config.json of tag v2)"},
	}
	for _, c := range cases {
		f := &fakeOps{failOn: c.fail}
		err := configure(parseConfig(t, fullConfig), f.ops(t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("fail %q: %v, want %q", c.fail, err, c.want)
		}
	}
	f := &fakeOps{}
	ops := f.ops(t.TempDir())
	ops.mount = func(string, string, string, uintptr, string) error { return syscall.EINVAL }
	if err := configure(parseConfig(t, `{"mounts":[{"tag":"x","path":"/x"}]}`), ops); err == nil ||
		err.Error() != "mount /x (tag x): invalid argument (no virtiofs device with this tag?)" {
		t.Errorf("einval: %v", err)
	}
	f = &fakeOps{noEther: true}
	if err := configure(parseConfig(t, fullConfig), f.ops(t.TempDir())); err == nil || err.Error() != "network: no ethernet interface" {
		t.Errorf("no ether: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := map[string]string{
		`{"network":{"address":"10.0.2","prefixLength":24}}`:                  "bad IPv4 address",
		`{"network":{"address":"fd00::1","prefixLength":64}}`:                 "bad IPv4 address",
		`{"network":{"address":"10.0.2.15","prefixLength":33}}`:               "bad prefix length",
		`{"network":{"address":"10.0.2.15","prefixLength":24,"mtu":70000}}`:   "bad mtu",
		`{"network":{"address":"10.0.2.15","prefixLength":24,"gateway":"x"}}`: "bad gateway",
		`{"network":{"address":"10.0.2.15","prefixLength":24,"dns":["x"]}}`:   "bad dns server",
		`{"mounts":[{"tag":"a","path":"rel"}]}`:                               "path must be absolute",
		`{"mounts":[{"tag":"a","path":"/"}]}`:                                 "path must be absolute and not /",
		`{"mounts":[{"tag":"a","path":"/x/.."}]}`:                             "not /",
		`{"mounts":[{"tag":"","path":"/x"}]}`:                                 "bad tag",
		`{"mounts":[{"tag":"../a","path":"/x"}]}`:                             "bad tag",
		`{"mounts":[{"tag":"a","path":"/x","file":"../f"}]}`:                  "bad file name",
		`{"mounts":[{"tag":"a","path":"/x","file":".."}]}`:                    "bad file name",
	}
	for c, want := range bad {
		f := &fakeOps{}
		err := configure(parseConfig(t, c), f.ops(t.TempDir()))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", c, err, want)
		}
		if len(f.calls) != 0 {
			t.Errorf("%s: a bad config still did %v", c, f.calls)
		}
	}
}

func TestConfigureOnce(t *testing.T) {
	f := &fakeOps{}
	apply := configureOnce(f.ops(t.TempDir()))
	c := parseConfig(t, `{"mounts":[{"tag":"a","path":"/a","readOnly":false}]}`)
	for i := 0; i < 2; i++ {
		if err := apply(c); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.calls) != 2 { // modules, mount
		t.Fatalf("applied twice: %v", f.calls)
	}
	if err := apply(parseConfig(t, `{"mounts":[]}`)); err == nil {
		t.Fatal("a different config was accepted")
	}
}

func TestFindEthernet(t *testing.T) {
	dir := t.TempDir()
	add := func(name, typ, index string) {
		os.MkdirAll(filepath.Join(dir, name), 0o755)
		os.WriteFile(filepath.Join(dir, name, "type"), []byte(typ+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, name, "ifindex"), []byte(index+"\n"), 0o644)
	}
	if _, _, err := findEthernet(dir); err == nil {
		t.Fatal("found an interface in an empty directory")
	}
	add("lo", "772", "1")
	add("sit0", "776", "2")
	add("eth1", "1", "4")
	add("eth0", "1", "3")
	if name, index, err := findEthernet(dir); err != nil || name != "eth0" || index != 3 {
		t.Fatalf("%s %d %v", name, index, err)
	}
}

func TestNetlinkMessages(t *testing.T) {
	addr := newAddrMsg(1, 2, netip.MustParseAddr("10.0.2.15"), 24)
	want := "28000000" + "1400" + "0505" + "01000000" + "00000000" + // nlmsghdr: len 40, RTM_NEWADDR, REQUEST|ACK|REPLACE|CREATE
		"02180000" + "02000000" + // ifaddrmsg: AF_INET, /24, flags 0, scope universe, index 2
		"08000200" + "0a00020f" + // IFA_LOCAL
		"08000100" + "0a00020f" // IFA_ADDRESS
	if hex.EncodeToString(addr) != want {
		t.Errorf("addr:\n%x\n%s", addr, want)
	}
	route := newDefaultRouteMsg(7, 2, netip.MustParseAddr("10.0.2.2"))
	want = "2c000000" + "1800" + "0505" + "07000000" + "00000000" + // len 44, RTM_NEWROUTE
		"02000000" + "fe030001" + "04000000" + // rtmsg: AF_INET, dst/src len 0, tos 0, main, boot, universe, unicast, ONLINK
		"08000500" + "0a000202" + // RTA_GATEWAY
		"08000400" + "02000000" // RTA_OIF 2
	if hex.EncodeToString(route) != want {
		t.Errorf("route:\n%x\n%s", route, want)
	}
}

func TestParseAck(t *testing.T) {
	errMsg := func(seq uint32, code int32) []byte {
		b := make([]byte, 4, 36)
		nle.PutUint32(b, uint32(code))
		b = append(b, make([]byte, 16)...) // the echoed request header
		return nlHeader(syscall.NLMSG_ERROR, 0, seq, b)
	}
	if done, err := parseAck(errMsg(3, 0), 3); !done || err != nil {
		t.Errorf("ack: %v %v", done, err)
	}
	if done, err := parseAck(errMsg(3, -int32(syscall.EEXIST)), 3); !done || err != syscall.EEXIST {
		t.Errorf("eexist: %v %v", done, err)
	}
	// An answer to another request is skipped; the one after it is found.
	two := append(errMsg(2, -1), errMsg(3, -int32(syscall.ENODEV))...)
	if done, err := parseAck(two, 3); !done || err != syscall.ENODEV {
		t.Errorf("second: %v %v", done, err)
	}
	if done, _ := parseAck(errMsg(2, 0), 3); done {
		t.Error("took another request's ack")
	}
	if done, err := parseAck([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 3); !done || err == nil {
		t.Errorf("malformed: %v %v", done, err)
	}
}

func TestConfigureFrames(t *testing.T) {
	var got *GuestConfig
	fail := false
	h := newHostWith(t, false, func(c *GuestConfig) error {
		got = c
		if fail {
			return errors.New("mount /mnt/data (tag v0): no such device")
		}
		return nil
	})
	h.send(tConfigure, 0, []byte(fullConfig))
	h.expectError(0, "not_ready")
	h.sendJSON(tHello, 0, map[string]int{"version": 1})
	h.next()
	h.send(tConfigure, 0, []byte("{nope"))
	h.expectError(0, "bad_message")
	h.send(tConfigure, 0, []byte(fullConfig))
	if f := h.next(); f.Type != tConfigured || f.Stream != 0 || string(f.Payload) != "{}" {
		t.Fatalf("%d %d %s", f.Type, f.Stream, f.Payload)
	}
	if got == nil || got.Network.Gateway != "10.0.2.2" || len(got.Mounts) != 3 || got.Mounts[2].File != "config.json" || !got.Mounts[0].ReadOnly {
		t.Fatalf("config: %+v", got)
	}
	fail = true
	h.send(tConfigure, 0, []byte(fullConfig))
	f := h.next()
	var e struct{ Code, Message string }
	json.Unmarshal(f.Payload, &e)
	if f.Type != tError || f.Stream != 0 || e.Code != "configure_failed" || !strings.Contains(e.Message, "/mnt/data") {
		t.Fatalf("%d %d %s", f.Type, f.Stream, f.Payload)
	}
	// The session is still usable.
	h.send(tPing, 0, []byte("p"))
	if f := h.next(); f.Type != tPong {
		t.Fatalf("%d", f.Type)
	}
}

func TestConfigureUnsupported(t *testing.T) {
	h := newHost(t, true)
	h.send(tConfigure, 0, []byte(`{"mounts":[]}`))
	h.expectError(0, "configure_failed")
}

func TestDeferredModulesOrder(t *testing.T) {
	dir := t.TempDir()
	d, err := openDeferredModules(filepath.Join(dir, "missing"))
	if err != nil || d.load() != nil {
		t.Fatalf("a missing order file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "order"), []byte(filepath.Join(dir, "nope.ko")+"\n"), 0o644)
	if _, err := openDeferredModules(filepath.Join(dir, "order")); err == nil {
		t.Fatal("a missing module was not reported")
	}
}

// Sessions on two channels may CONFIGURE at once: the config is applied once.
func TestConfigureOnceConcurrently(t *testing.T) {
	f := &fakeOps{}
	apply := configureOnce(f.ops(t.TempDir()))
	c := parseConfig(t, `{"mounts":[{"tag":"a","path":"/a","readOnly":false}]}`)
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- apply(c) }()
	}
	if err1, err2 := <-errs, <-errs; err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if len(f.calls) != 2 { // modules, mount
		t.Fatalf("applied twice: %v", f.calls)
	}
}
