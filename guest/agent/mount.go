package main

// Filesystem setup of PID 1: the early pseudo filesystems in the initramfs, the root disk,
// the switch into it, and the mounts a container-like userland expects.

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

type mountSpec struct {
	src, target, fstype string
	flags               uintptr
	data                string
	mode                os.FileMode
}

func mountAll(specs []mountSpec) error {
	for _, m := range specs {
		if err := os.MkdirAll(m.target, m.mode); err != nil {
			return err
		}
		if err := syscall.Mount(m.src, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

const nosuidNodevNoexec = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC

func mountProc() error {
	return mountAll([]mountSpec{{"proc", "/proc", "proc", nosuidNodevNoexec, "", 0o555}})
}

func mountEarly() error {
	return mountAll([]mountSpec{
		{"sysfs", "/sys", "sysfs", nosuidNodevNoexec, "", 0o555},
		{"devtmpfs", "/dev", "devtmpfs", syscall.MS_NOSUID, "mode=0755", 0o755},
	})
}

// switchRoot mounts the root disk on /newroot and makes it /. The initramfs is rootfs, which
// cannot be pivot_root'ed away, so the new root is moved over it and chroot'ed into instead.
func switchRoot(dev, fstype string) error {
	if err := waitPath(dev, 5*time.Second); err != nil {
		return fmt.Errorf("root device %s: %w", dev, err)
	}
	if err := mountAll([]mountSpec{{dev, "/newroot", fstype, 0, "", 0o755}}); err != nil {
		return err
	}
	if fstype == "ext4" {
		if grown, err := growRoot(dev, "/newroot"); err != nil {
			logf("cannot grow the root filesystem: %v", err)
		} else if grown > 0 {
			logf("root filesystem grown to %d MiB", grown>>20)
		}
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if err := os.MkdirAll("/newroot"+d, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(d, "/newroot"+d, "", syscall.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s: %w", d, err)
		}
	}
	// Free the initramfs copy of what we shipped; rootfs memory is otherwise never returned.
	os.RemoveAll("/lib")
	os.Remove("/init")
	if err := os.Chdir("/newroot"); err != nil {
		return err
	}
	if err := syscall.Mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root: %w", err)
	}
	if err := syscall.Chroot("."); err != nil {
		return err
	}
	return os.Chdir("/")
}

// setupRoot adds what programs expect in the new root besides /dev, /proc and /sys.
func setupRoot() error {
	err := mountAll([]mountSpec{
		{"devpts", "/dev/pts", "devpts", syscall.MS_NOSUID | syscall.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620", 0o755},
		{"shm", "/dev/shm", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=1777", 0o755},
		{"tmpfs", "/run", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV, "mode=0755", 0o755},
	})
	if err != nil {
		return err
	}
	// With a private devpts instance, /dev/ptmx must be its ptmx.
	os.Remove("/dev/ptmx")
	links := [][2]string{
		{"pts/ptmx", "/dev/ptmx"}, {"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], l[1]); err != nil && !os.IsExist(err) {
			return err
		}
	}
	if _, err := os.Stat("/tmp"); os.IsNotExist(err) {
		if err := os.Mkdir("/tmp", 0o777); err != nil {
			return err
		}
		return os.Chmod("/tmp", os.ModeSticky|0o777) // Mkdir is subject to the umask
	}
	return nil
}
