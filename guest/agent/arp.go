package main

// A gratuitous ARP after the address is set: passt learns the guest's MAC address from the
// first frame the guest sends, and until then it cannot deliver inbound (port-forwarded)
// connections. The announcement never leaves passt (ARP is answered and consumed there).

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// arpAnnouncement is an ARP request for our own address (RFC 5227 announcement).
func arpAnnouncement(mac net.HardwareAddr, ip netip.Addr) []byte {
	pkt := make([]byte, 28)
	binary.BigEndian.PutUint16(pkt[0:], 1)      // hardware: ethernet
	binary.BigEndian.PutUint16(pkt[2:], 0x0800) // protocol: IPv4
	pkt[4], pkt[5] = 6, 4
	binary.BigEndian.PutUint16(pkt[6:], 1) // request
	copy(pkt[8:14], mac)
	a := ip.As4()
	copy(pkt[14:18], a[:])
	copy(pkt[24:28], a[:])
	return pkt
}

func announce(index int, ip netip.Addr) error {
	iface, err := net.InterfaceByIndex(index)
	if err != nil {
		return err
	}
	if len(iface.HardwareAddr) != 6 {
		return fmt.Errorf("%s has no ethernet address", iface.Name)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(syscall.ETH_P_ARP)))
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ARP), Ifindex: index, Halen: 6,
		Addr: [8]uint8{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	return syscall.Sendto(fd, arpAnnouncement(iface.HardwareAddr, ip), 0, to)
}
