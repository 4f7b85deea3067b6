package main

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

func TestArpAnnouncement(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	got := arpAnnouncement(mac, netip.MustParseAddr("10.0.2.15"))
	want := []byte{0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 15}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x", got)
	}
}
