// Command agent is BoxLite's guest agent: PID 1 of the VM's initramfs. It loads the virtio
// modules, switches into the box's root disk and serves the host over a virtio-serial port,
// a virtio-vsock port, or both.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// 0.4.0: vsock channel (boxlite.vsock), virtio-pci (boxlite.virtio=pci). 0.3.0: FREEZE/THAW
// (saved and restored VMs). 0.2.0: copies (COPY_IN, COPY_OUT).
const agentName = "boxlite-agent 0.4.0"

var console io.Writer = os.Stderr

func logf(format string, a ...any) {
	fmt.Fprintf(console, "boxlite-agent: "+format+"\n", a...)
}

// fatal reports on the console (the host shows its tail) and powers off.
func fatal(format string, a ...any) {
	logf("error: "+format, a...)
	powerOff()
}

func main() {
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY|syscall.O_NOCTTY, 0); err == nil {
		console = c
	}
	logf("init")
	if os.Getpid() != 1 {
		logf("error: must run as PID 1 (init of the VM)")
		os.Exit(2)
	}
	if err := mountProc(); err != nil {
		fatal("%v", err)
	}
	cmd := readCmdline()
	if cmd["boxlite.probe"] == "1" {
		powerOff()
	}
	if err := mountEarly(); err != nil {
		fatal("%v", err)
	}
	vsockPort, err := cmd.vsockPort()
	if err != nil {
		fatal("%v", err)
	}
	t0 := time.Now()
	nmod, err := loadModules(bootOrders(cmd))
	if err != nil {
		fatal("%v", err)
	}
	volumeModules, err := openDeferredModules("/lib/modules/order.volumes")
	if err != nil {
		fatal("%v", err)
	}
	t1 := time.Now()
	// The channels: the virtio-serial port, a vsock port, or both. With vsock the port is
	// optional and looked for once vsock is served: a VMM without one must not wait for it.
	portName := cmd.get("boxlite.port", "boxlite.agent")
	var portPath string
	var vsock *vsockListener
	if vsockPort == 0 {
		if portPath, err = findPort(portName, 5*time.Second); err != nil {
			fatal("%v", err)
		}
	} else if vsock, err = listenVsock(vsockPort, cmd.vsockLoopback()); err != nil {
		fatal("%v", err)
	}
	t2 := time.Now()
	root := cmd.get("boxlite.root", "/dev/vda")
	if err := switchRoot(root, cmd.get("boxlite.rootfstype", "ext4")); err != nil {
		fatal("cannot mount root disk %s: %v", root, err)
	}
	// One line of boot timing: the host keeps the console tail for diagnosis.
	logf("%d modules %v, port %v, root %v", nmod, t1.Sub(t0).Round(time.Millisecond),
		t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
	if err := setupRoot(); err != nil {
		fatal("%v", err)
	}
	hostname := cmd.get("boxlite.hostname", "boxlite")
	if err := syscall.Sethostname([]byte(hostname)); err != nil {
		logf("sethostname: %v", err)
	}
	if err := ifUp("lo"); err != nil {
		logf("lo: %v", err)
	}
	loadFsModules := func() error {
		t := time.Now()
		err := volumeModules.load()
		logf("volume modules %v", time.Since(t).Round(time.Millisecond))
		return err
	}
	apply := configureOnce(realSysOps(hostname, loadFsModules))
	cfg := Config{Agent: agentName, Shutdown: shutdown, Logf: logf, Thaw: applyThaw,
		Configure: func(c *GuestConfig) error {
			t := time.Now()
			err := apply(c)
			if err == nil {
				logf("configured (network %v, %d mounts) in %v", c.Network != nil, len(c.Mounts), time.Since(t).Round(time.Millisecond))
			}
			return err
		}}
	if vsock == nil {
		logf("ready")
		serve(portPath, cfg) // never returns
	}
	go serveVsock(vsock, cfg)
	logf("ready")
	if vsock.loopback {
		logf("vsock port %d (and loopback: guest processes can connect, for tests only)", vsockPort)
	} else {
		logf("vsock port %d", vsockPort)
	}
	if portPath, err = findPort(portName, 5*time.Second); err != nil {
		logf("no virtio-serial port %s: vsock only", portName)
		select {}
	}
	serve(portPath, cfg)
}

// serve runs sessions on the port forever. The port is opened once per session: opening it
// per message loses data. Only a session that ended in an error reopens it.
func serve(portPath string, cfg Config) {
	for {
		port, err := os.OpenFile(portPath, os.O_RDWR, 0)
		if err != nil {
			fatal("open %s: %v", portPath, err)
		}
		for {
			r := &activity{r: port}
			err = Serve(struct {
				io.Reader
				io.Writer
			}{r, port}, cfg)
			if err != io.EOF || r.seen {
				break
			}
			// No host on the other end yet: the port reads EOF until one connects.
			time.Sleep(20 * time.Millisecond)
		}
		var pe *ProtocolError
		if errors.As(err, &pe) {
			logf("%v; reopening the channel", err)
		}
		port.Close()
	}
}

// serveVsock runs a session per accepted connection from the host, concurrently: each
// connection is a channel of its own (a framing error ends only that connection).
func serveVsock(l *vsockListener, cfg Config) {
	for {
		c, peer, err := l.accept()
		if err != nil {
			// Out of descriptors or memory: the serial channel, if any, still works.
			logf("%v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if !l.allowed(peer) {
			logf("vsock: refused a connection from CID %d (only the host may connect)", peer)
			c.Close()
			continue
		}
		go func() {
			defer c.Close()
			err := Serve(c, cfg)
			var pe *ProtocolError
			if errors.As(err, &pe) {
				logf("vsock: %v; closing the connection", err)
			}
		}()
	}
}

// activity records whether a reader ever returned data.
type activity struct {
	r    io.Reader
	seen bool
}

func (a *activity) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.seen = true
	}
	return n, err
}
