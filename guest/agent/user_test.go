package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestResolveUser(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	group := filepath.Join(dir, "group")
	os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app,other\n"), 0o644)

	cases := []struct {
		spec string
		want identity
	}{
		{"app", identity{uid: 1000, gid: 1000, groups: []uint32{50}, home: "/home/app"}},
		{"1000", identity{uid: 1000, gid: 1000, groups: []uint32{50}, home: "/home/app"}},
		{"app:staff", identity{uid: 1000, gid: 50, groups: []uint32{50}, home: "/home/app"}},
		{"4242:7", identity{uid: 4242, gid: 7, home: "/"}},
		{"root", identity{home: "/root"}},
	}
	for _, c := range cases {
		got, err := resolveUser(c.spec, passwd, group)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
	for _, bad := range []string{"nobody-here", "app:nogroup"} {
		if _, err := resolveUser(bad, passwd, group); err == nil {
			t.Errorf("%s: expected an error", bad)
		}
	}
}
