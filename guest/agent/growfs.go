package main

// Growing the root filesystem to the size of its disk: a box created with diskSizeGb gets a
// qcow2 disk larger than the image's ext4, and ext4 grows online with one ioctl, so no
// resize2fs binary is needed in the initramfs.

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

const (
	blkGetSize64   = 0x80081272 // BLKGETSIZE64
	ext4ResizeFS   = 0x40086610 // EXT4_IOC_RESIZE_FS: _IOW('f', 16, __u64)
	ext4SuperMagic = 0xEF53
)

// ext4Blocks reads the block count and block size from the ext4 superblock of dev.
func ext4Blocks(dev *os.File) (blocks uint64, blockSize uint64, err error) {
	sb := make([]byte, 1024)
	if _, err := dev.ReadAt(sb, 1024); err != nil {
		return 0, 0, err
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != ext4SuperMagic {
		return 0, 0, fmt.Errorf("not an ext4 superblock")
	}
	blocks = uint64(binary.LittleEndian.Uint32(sb[0x4:]))
	const incompat64bit = 0x80
	if binary.LittleEndian.Uint32(sb[0x60:])&incompat64bit != 0 {
		blocks |= uint64(binary.LittleEndian.Uint32(sb[0x150:])) << 32
	}
	return blocks, 1024 << binary.LittleEndian.Uint32(sb[0x18:]), nil
}

// growRoot grows the ext4 mounted at mountpoint (from dev) to fill dev; a no-op when it does.
// It returns the new size in bytes, or 0 when nothing changed.
func growRoot(devPath, mountpoint string) (uint64, error) {
	dev, err := os.Open(devPath)
	if err != nil {
		return 0, err
	}
	defer dev.Close()
	var devBytes uint64
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, dev.Fd(), blkGetSize64, uintptr(unsafe.Pointer(&devBytes))); e != 0 {
		return 0, fmt.Errorf("disk size: %w", e)
	}
	blocks, blockSize, err := ext4Blocks(dev)
	if err != nil {
		return 0, err
	}
	target := devBytes / blockSize
	if target <= blocks {
		return 0, nil
	}
	mnt, err := os.Open(mountpoint)
	if err != nil {
		return 0, err
	}
	defer mnt.Close()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, mnt.Fd(), ext4ResizeFS, uintptr(unsafe.Pointer(&target))); e != 0 {
		return 0, fmt.Errorf("resize from %d to %d blocks: %w", blocks, target, e)
	}
	return target * blockSize, nil
}
