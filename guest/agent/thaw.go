package main

// What a THAW changes in the guest system: the clock, the RNG, the per-boot identity.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"os"
	"syscall"
	"unsafe"
)

const (
	rndAddEntropy  = 0x40085203 // RNDADDENTROPY: _IOW('R', 0x03, int[2])
	rndReseedCrng  = 0x5207     // RNDRESEEDCRNG: _IO('R', 0x07)
	machineIDFile  = "/etc/machine-id"
	entropyMaxSize = 4096
)

// applyThaw: a restored or resumed VM's clock is where it was when it was saved or paused, and
// every clone of one saved state would draw the same random numbers until the kernel reseeds.
func applyThaw(req *ThawRequest) error {
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if req.TimeMs > 0 {
		tv := syscall.NsecToTimeval(req.TimeMs * 1e6)
		keep(syscall.Settimeofday(&tv))
	}
	if len(req.Entropy) > 0 {
		keep(addEntropy(req.Entropy))
	}
	if req.Fresh {
		keep(renewMachineID(machineIDFile))
	}
	return firstErr
}

// addEntropy credits the host's bytes to the pool (they come from the host's CSPRNG) and
// reseeds the CRNG at once, so the next read of /dev/urandom differs between clones.
func addEntropy(b []byte) error {
	if len(b) > entropyMaxSize {
		b = b[:entropyMaxSize]
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(b))
	binary.LittleEndian.PutUint32(info[0:], uint32(len(b)*8))
	binary.LittleEndian.PutUint32(info[4:], uint32(len(b)))
	copy(info[8:], b)
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&info[0]))); e != 0 {
		return e
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), rndReseedCrng, 0); e != 0 {
		return e
	}
	return nil
}

// renewMachineID gives a clone its own machine id, when the image has one (systemd's format:
// 32 lowercase hex digits and a newline). An empty or absent file stays as it is.
func renewMachineID(file string) error {
	st, err := os.Lstat(file)
	if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return nil
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return err
	}
	tmp := file + ".boxlite"
	if err := os.WriteFile(tmp, []byte(hex.EncodeToString(id)+"\n"), 0o444); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}
