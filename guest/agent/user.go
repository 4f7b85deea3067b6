package main

// Users of exec requests: "name", "uid", "name:group" or "uid:gid", resolved against the box's
// own /etc/passwd and /etc/group (the host cannot see them), as container runtimes do.

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

type identity struct {
	uid, gid uint32
	groups   []uint32
	home     string
}

// readDB yields the colon-separated fields of each line of an /etc/passwd-style file.
func readDB(path string, each func(fields []string) bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			if !each(strings.Split(line, ":")) {
				return
			}
		}
	}
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// resolveUser maps spec to ids the way `docker run --user` does: a numeric uid without a
// passwd entry is allowed (gid 0, home /).
func resolveUser(spec, passwd, group string) (identity, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	id := identity{home: "/"}
	name := ""
	found := false
	readDB(passwd, func(f []string) bool {
		if len(f) < 7 || (f[0] != userPart && f[2] != userPart) {
			return true
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if ok1 && ok2 {
			name, id.uid, id.gid, id.home, found = f[0], uid, gid, f[5], true
		}
		return false
	})
	if !found {
		uid, ok := parseID(userPart)
		if !ok {
			return id, fmt.Errorf("user %q not found in /etc/passwd", userPart)
		}
		id.uid = uid
	}
	if hasGroup {
		gid, ok := parseID(groupPart)
		if !ok {
			ok = false
			readDB(group, func(f []string) bool {
				if len(f) >= 3 && f[0] == groupPart {
					gid, ok = parseID(f[2])
					return false
				}
				return true
			})
			if !ok {
				return id, fmt.Errorf("group %q not found in /etc/group", groupPart)
			}
		}
		id.gid = gid
	}
	if name != "" {
		readDB(group, func(f []string) bool {
			if len(f) >= 4 {
				for _, member := range strings.Split(f[3], ",") {
					if gid, ok := parseID(f[2]); ok && member == name {
						id.groups = append(id.groups, gid)
					}
				}
			}
			return true
		})
	}
	return id, nil
}
