#!/bin/sh
# Fuzzes each target of fuzz_test.go for a bounded time: FUZZTIME each (default 15s, ~2 min
# in all). New coverage is minimized for at most 5 s so that it does not eat the budget.
# A crasher is written to testdata/fuzz/<target>/ and from then on runs with every `go test`.
set -eu
cd "$(dirname "$0")"
for target in $(go test -list '^Fuzz' . | grep '^Fuzz'); do
  echo "fuzz: $target"
  go test -run '^$' -fuzz "^$target\$" -fuzztime "${FUZZTIME:-15s}" -fuzzminimizetime 5s .
done
