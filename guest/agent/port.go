package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// findPort waits for the virtio-serial port called name and returns its /dev node.
func findPort(name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/*")
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "name"))
			if err != nil || strings.TrimSpace(string(b)) != name {
				continue
			}
			dev := "/dev/" + filepath.Base(d)
			if _, err := os.Stat(dev); err == nil {
				return dev, nil
			}
		}
		if time.Now().After(deadline) {
			return "", errors.New("virtio-serial port " + name + " not found")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitPath waits for a device node to appear (drivers probe asynchronously).
func waitPath(p string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := os.Stat(p)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
}
