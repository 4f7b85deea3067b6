package main

import (
	"os"
	"strings"
)

// cmdline holds the key=value words of /proc/cmdline (the agent's only configuration).
type cmdline map[string]string

func parseCmdline(s string) cmdline {
	c := cmdline{}
	for _, w := range strings.Fields(s) {
		k, v, _ := strings.Cut(w, "=")
		c[k] = v
	}
	return c
}

func readCmdline() cmdline {
	b, _ := os.ReadFile("/proc/cmdline")
	return parseCmdline(string(b))
}

func (c cmdline) get(key, def string) string {
	if v, ok := c[key]; ok && v != "" {
		return v
	}
	return def
}
