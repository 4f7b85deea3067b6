package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// metricsReport answers METRICS: what the guest kernel counts, so the host reports the
// guest's own view of its memory and network rather than estimates.
type metricsReport struct {
	Token                string `json:"token"`
	MemoryTotalBytes     uint64 `json:"memoryTotalBytes"`
	MemoryAvailableBytes uint64 `json:"memoryAvailableBytes"`
	NetworkRxBytes       uint64 `json:"networkRxBytes"`
	NetworkTxBytes       uint64 `json:"networkTxBytes"`
}

func readMetrics(token string) metricsReport {
	m := metricsReport{Token: token}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		m.MemoryTotalBytes, m.MemoryAvailableBytes = parseMeminfo(f)
		f.Close()
	}
	if f, err := os.Open("/proc/net/dev"); err == nil {
		m.NetworkRxBytes, m.NetworkTxBytes = parseNetDev(f)
		f.Close()
	}
	return m
}

// parseMeminfo returns MemTotal and MemAvailable in bytes (the file says kB).
func parseMeminfo(f *os.File) (total, available uint64) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemTotal:":
			total = n * 1024
		case "MemAvailable:":
			available = n * 1024
		}
	}
	return total, available
}

// parseNetDev sums received and transmitted bytes of every interface but loopback.
func parseNetDev(f *os.File) (rx, tx uint64) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, counters, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		fields := strings.Fields(counters)
		if len(fields) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(fields[0], 10, 64)
		t, err2 := strconv.ParseUint(fields[8], 10, 64)
		if err1 == nil && err2 == nil {
			rx += r
			tx += t
		}
	}
	return rx, tx
}
