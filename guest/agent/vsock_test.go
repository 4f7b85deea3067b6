package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"syscall"
	"testing"
	"unsafe"
)

// struct sockaddr_vm as the kernel lays it out (linux/vm_sockets.h), little-endian.
func TestSockaddrVMEncoding(t *testing.T) {
	got := sockaddrVM(vmaddrCIDAny, 1024)
	want := []byte{
		40, 0, // svm_family AF_VSOCK
		0, 0, // svm_reserved1
		0x00, 0x04, 0, 0, // svm_port 1024
		0xff, 0xff, 0xff, 0xff, // svm_cid VMADDR_CID_ANY
		0,       // svm_flags
		0, 0, 0, // svm_zero
	}
	if !bytes.Equal(got[:], want) {
		t.Fatalf("% x, want % x", got, want)
	}
	got = sockaddrVM(2, 0x01020304)
	if !bytes.Equal(got[4:12], []byte{4, 3, 2, 1, 2, 0, 0, 0}) || sockaddrVMCID(got[:]) != 2 {
		t.Fatalf("port/cid: % x", got)
	}
}

// Only the host gets a session; the guest itself only when loopback is on (tests).
func TestVsockPeers(t *testing.T) {
	for _, c := range []struct {
		loopback bool
		cid      uint32
		want     bool
	}{{false, vmaddrCIDHost, true}, {false, vmaddrCIDLocal, false}, {false, 3, false}, {false, 0, false},
		{true, vmaddrCIDHost, true}, {true, vmaddrCIDLocal, true}, {true, 3, false}, {true, vmaddrCIDAny, false}} {
		if got := (&vsockListener{loopback: c.loopback}).allowed(c.cid); got != c.want {
			t.Errorf("loopback %v cid %d: %v", c.loopback, c.cid, got)
		}
	}
}

// Where the test host has AF_VSOCK, the kernel reads our sockaddr back as we meant it.
func TestListenVsockBindsThePort(t *testing.T) {
	port := uint32(40000 + syscall.Getpid()%20000)
	l, err := listenVsock(port, false)
	if err != nil {
		if errors.Is(err, syscall.EAFNOSUPPORT) {
			t.Skip("no AF_VSOCK on this host")
		}
		t.Fatal(err)
	}
	defer l.Close()
	var sa [sockaddrVMLen]byte
	n := uint32(len(sa))
	rc, _ := l.f.SyscallConn()
	var e syscall.Errno
	rc.Control(func(fd uintptr) {
		_, _, e = syscall.RawSyscall(syscall.SYS_GETSOCKNAME, fd, uintptr(unsafe.Pointer(&sa[0])), uintptr(unsafe.Pointer(&n)))
	})
	if e != 0 {
		t.Fatal(e)
	}
	if binary.LittleEndian.Uint16(sa[0:]) != afVsock || binary.LittleEndian.Uint32(sa[4:]) != port {
		t.Fatalf("getsockname: % x", sa[:n])
	}
	if _, err := listenVsock(port, true); err == nil {
		t.Fatal("a second listener on the same port")
	}
}
