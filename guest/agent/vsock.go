package main

// A virtio-vsock listener for drivers whose VMM offers vsock rather than virtio-serial
// (cloud-hypervisor's hybrid vsock, vfkit). Go's standard library has no AF_VSOCK, so the
// socket is made with raw syscalls and the accepted connections become *os.File on Go's
// poller (non-blocking descriptors): a blocked Read parks a goroutine, not a thread.
//
// Only the host may connect: a session runs anything as root, and a process inside the guest
// must not get one. Without the loopback transport (vsock_loopback, loaded only with
// boxlite.vsock.loopback=1, for tests) a guest process cannot reach the guest's own listener,
// and a connection whose peer is not the host is closed anyway.

import (
	"encoding/binary"
	"os"
	"syscall"
	"unsafe"
)

const (
	afVsock        = 40         // AF_VSOCK
	vmaddrCIDAny   = 0xffffffff // VMADDR_CID_ANY: every CID of this guest (host-facing and loopback)
	vmaddrCIDLocal = 1          // VMADDR_CID_LOCAL: this guest, through the loopback transport
	vmaddrCIDHost  = 2          // VMADDR_CID_HOST: the VMM's side (vfkit, cloud-hypervisor's hybrid vsock)
	sockaddrVMLen  = 16         // sizeof(struct sockaddr_vm)
)

// sockaddrVM encodes struct sockaddr_vm (linux/vm_sockets.h) in host (little-endian, amd64)
// byte order: family u16, reserved u16, port u32, cid u32, flags u8, zero[3].
func sockaddrVM(cid, port uint32) [sockaddrVMLen]byte {
	var sa [sockaddrVMLen]byte
	binary.LittleEndian.PutUint16(sa[0:], afVsock)
	binary.LittleEndian.PutUint32(sa[4:], port)
	binary.LittleEndian.PutUint32(sa[8:], cid)
	return sa
}

// sockaddrVMCID is the cid of an encoded struct sockaddr_vm.
func sockaddrVMCID(sa []byte) uint32 { return binary.LittleEndian.Uint32(sa[8:]) }

// vsockListener is a listening AF_VSOCK socket.
type vsockListener struct {
	f *os.File
	// loopback: connections from inside the guest (CID 1) are accepted too (tests).
	loopback bool
}

// allowed reports whether a connection from peer cid may have a session.
func (l *vsockListener) allowed(cid uint32) bool {
	return cid == vmaddrCIDHost || (l.loopback && cid == vmaddrCIDLocal)
}

// listenVsock listens on port for connections to any of the guest's CIDs.
func listenVsock(port uint32, loopback bool) (*vsockListener, error) {
	fd, err := syscall.Socket(afVsock, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket AF_VSOCK", err)
	}
	sa := sockaddrVM(vmaddrCIDAny, port)
	if _, _, e := syscall.RawSyscall(syscall.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa[0])), sockaddrVMLen); e != 0 {
		syscall.Close(fd)
		return nil, os.NewSyscallError("bind vsock", e)
	}
	if err := syscall.Listen(fd, 16); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("listen vsock", err)
	}
	return &vsockListener{os.NewFile(uintptr(fd), "vsock-listener"), loopback}, nil
}

// accept waits for the next connection and returns it with its peer's CID. accept4 is
// retried through the poller (EAGAIN parks the goroutine) instead of blocking: PID 1 may run
// on a single vCPU.
func (l *vsockListener) accept() (*os.File, uint32, error) {
	rc, err := l.f.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	nfd := -1
	var peer [sockaddrVMLen]byte
	var aerr error
	err = rc.Read(func(fd uintptr) bool {
		var r uintptr
		e := syscall.EINTR
		// vsock_accept reports EINTR for a signal that arrives even when it would not block.
		for e == syscall.EINTR {
			n := uint32(sockaddrVMLen)
			r, _, e = syscall.RawSyscall6(syscall.SYS_ACCEPT4, fd, uintptr(unsafe.Pointer(&peer[0])), uintptr(unsafe.Pointer(&n)),
				syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0, 0)
		}
		if e == syscall.EAGAIN {
			return false
		}
		if e != 0 {
			aerr = os.NewSyscallError("accept4 vsock", e)
		} else {
			nfd = int(r)
		}
		return true
	})
	if err == nil {
		err = aerr
	}
	if err != nil {
		return nil, 0, err
	}
	return os.NewFile(uintptr(nfd), "vsock"), sockaddrVMCID(peer[:]), nil
}

func (l *vsockListener) Close() error { return l.f.Close() }
