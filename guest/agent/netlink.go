package main

// The two rtnetlink requests the agent needs (an IPv4 address, a default route), written by
// hand: syscall only offers read-only dumps (NetlinkRIB). Messages are built by pure functions
// so tests compare their bytes; nlRequest sends one and reads its ACK.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// Netlink is host-endian; the agent is built for amd64 only.
var nle = binary.LittleEndian

const nlFlagsCreate = syscall.NLM_F_REQUEST | syscall.NLM_F_ACK | syscall.NLM_F_CREATE | syscall.NLM_F_REPLACE

func nlHeader(typ, flags uint16, seq uint32, body []byte) []byte {
	b := make([]byte, 16, 16+len(body))
	nle.PutUint32(b[0:], uint32(16+len(body)))
	nle.PutUint16(b[4:], typ)
	nle.PutUint16(b[6:], flags)
	nle.PutUint32(b[8:], seq)
	// b[12:16]: port id 0 = the kernel
	return append(b, body...)
}

// nlAttr appends a route attribute padded to 4 bytes.
func nlAttr(b []byte, typ uint16, data []byte) []byte {
	var h [4]byte
	nle.PutUint16(h[0:], uint16(4+len(data)))
	nle.PutUint16(h[2:], typ)
	b = append(append(b, h[:]...), data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// newAddrMsg is `ip addr replace ADDR/PREFIX dev INDEX`.
func newAddrMsg(seq uint32, index int, addr netip.Addr, prefix int) []byte {
	a := addr.As4()
	body := make([]byte, 8) // struct ifaddrmsg
	body[0] = syscall.AF_INET
	body[1] = byte(prefix)
	body[3] = syscall.RT_SCOPE_UNIVERSE
	nle.PutUint32(body[4:], uint32(index))
	body = nlAttr(body, syscall.IFA_LOCAL, a[:])
	body = nlAttr(body, syscall.IFA_ADDRESS, a[:])
	return nlHeader(syscall.RTM_NEWADDR, nlFlagsCreate, seq, body)
}

// newDefaultRouteMsg is `ip route replace default via GW dev INDEX onlink`. onlink lets the
// gateway lie outside the address's prefix (e.g. a /32 address).
func newDefaultRouteMsg(seq uint32, index int, gw netip.Addr) []byte {
	g := gw.As4()
	body := make([]byte, 12) // struct rtmsg, dst_len 0 = default
	body[0] = syscall.AF_INET
	body[4] = syscall.RT_TABLE_MAIN
	body[5] = syscall.RTPROT_BOOT
	body[6] = syscall.RT_SCOPE_UNIVERSE
	body[7] = syscall.RTN_UNICAST
	nle.PutUint32(body[8:], syscall.RTNH_F_ONLINK)
	body = nlAttr(body, syscall.RTA_GATEWAY, g[:])
	var oif [4]byte
	nle.PutUint32(oif[:], uint32(index))
	body = nlAttr(body, syscall.RTA_OIF, oif[:])
	return nlHeader(syscall.RTM_NEWROUTE, nlFlagsCreate, seq, body)
}

// parseAck finds the NLMSG_ERROR answer to seq in a read buffer: nil for an ACK (error 0),
// the errno otherwise. done is false when the buffer holds no answer to seq.
func parseAck(b []byte, seq uint32) (done bool, err error) {
	for len(b) >= 16 {
		l := int(nle.Uint32(b[0:]))
		if l < 16 || l > len(b) {
			return true, errors.New("netlink: malformed reply")
		}
		typ, s := nle.Uint16(b[4:]), nle.Uint32(b[8:])
		if typ == syscall.NLMSG_ERROR && s == seq {
			if l < 20 {
				return true, errors.New("netlink: short error message")
			}
			if code := int32(nle.Uint32(b[16:])); code != 0 {
				return true, syscall.Errno(-code)
			}
			return true, nil
		}
		b = b[(l+3)&^3:]
	}
	return false, nil
}

var nlSeq uint32

// nlRequest sends one request built by build(seq) to the kernel and waits for its ACK.
func nlRequest(build func(seq uint32) []byte) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	nlSeq++
	seq := nlSeq
	if err := syscall.Sendto(fd, build(seq), 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		if done, err := parseAck(buf[:n], seq); done {
			return err
		}
	}
}
