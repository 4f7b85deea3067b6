package main

import (
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// shutdown implements SHUTDOWN: stop every process, flush the root disk, power off.
func shutdown() {
	syscall.Kill(-1, syscall.SIGTERM)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && userProcesses() > 0; {
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(-1, syscall.SIGKILL)
	syscall.Sync()
	for _, m := range []string{"/dev/pts", "/dev/shm", "/run"} {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	// The root cannot be unmounted from inside it; read-only makes ext4 flush and mark it clean.
	if err := syscall.Mount("", "/", "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		logf("remount / read-only: %v", err)
	}
	powerOff()
}

// userProcesses counts live processes other than PID 1. Kernel threads and zombies have an
// empty cmdline; kill(-1, 0) cannot be used because it counts kernel threads.
func userProcesses() int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if d == "/proc/1" {
			continue
		}
		if b, err := os.ReadFile(d + "/cmdline"); err == nil && len(b) > 0 {
			n++
		}
	}
	return n
}

func powerOff() {
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
