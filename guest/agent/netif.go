package main

import (
	"syscall"
	"unsafe"
)

// ifreq is struct ifreq: an interface name, then a union of which we use flags or mtu.
type ifreq struct {
	name  [syscall.IFNAMSIZ]byte
	value [24]byte
}

// ifIoctl runs interface ioctls on `name` through one datagram socket.
func ifIoctl(name string, run func(fd int, ifr *ifreq) error) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr ifreq
	copy(ifr.name[:], name)
	return run(fd, &ifr)
}

// ifUp sets IFF_UP on an interface; for lo the kernel then adds 127.0.0.1 and ::1 itself.
func ifUp(name string) error {
	return ifIoctl(name, func(fd int, ifr *ifreq) error {
		if err := ioctl(fd, syscall.SIOCGIFFLAGS, unsafe.Pointer(ifr)); err != nil {
			return err
		}
		flags := (*uint16)(unsafe.Pointer(&ifr.value[0]))
		*flags |= syscall.IFF_UP | syscall.IFF_RUNNING
		return ioctl(fd, syscall.SIOCSIFFLAGS, unsafe.Pointer(ifr))
	})
}

// ifSetMTU sets an interface's MTU (before it is up, as with ip link set mtu).
func ifSetMTU(name string, mtu int) error {
	return ifIoctl(name, func(fd int, ifr *ifreq) error {
		*(*int32)(unsafe.Pointer(&ifr.value[0])) = int32(mtu)
		return ioctl(fd, syscall.SIOCSIFMTU, unsafe.Pointer(ifr))
	})
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}
