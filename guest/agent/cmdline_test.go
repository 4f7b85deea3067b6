package main

import "testing"

func TestCmdline(t *testing.T) {
	c := parseCmdline("console=ttyS0 quiet boxlite.root=/dev/vdb boxlite.probe=1 boxlite.hostname= x=a=b\n")
	if c.get("boxlite.root", "/dev/vda") != "/dev/vdb" || c["boxlite.probe"] != "1" || c["x"] != "a=b" {
		t.Fatalf("%v", c)
	}
	if c.get("boxlite.port", "boxlite.agent") != "boxlite.agent" || c.get("boxlite.hostname", "boxlite") != "boxlite" {
		t.Fatalf("defaults: %v", c)
	}
}
