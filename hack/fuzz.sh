#!/usr/bin/env bash
# Runs every `go test -fuzz` target of the module for FUZZ_TIME each (default 5s): go test
# takes one target at a time, so this finds them and runs them in turn. Fails on the first
# crash, naming it; the failing input is kept under the package's testdata/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_TIME="${FUZZ_TIME:-5s}"
count=0
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  echo "fuzz: $pkg $name ($FUZZ_TIME)"
  # go test -fuzz sometimes ends with a bare "context deadline exceeded" when the time is
  # up while a worker is busy (no crash, no failing input written): that run is repeated
  # (up to twice). A real failure writes its input under testdata/fuzz and fails at once.
  for try in 1 2 3; do
    if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZ_TIME" "$pkg" >/tmp/fuzz-$$.log 2>&1; then
      break
    fi
    if [ "$try" -lt 3 ] && ! grep -q "Failing input written to" /tmp/fuzz-$$.log && grep -q "context deadline exceeded" /tmp/fuzz-$$.log; then
      echo "fuzz: $name ended on the fuzzer's own deadline without a failure; running it again"
      continue
    fi
    cat /tmp/fuzz-$$.log
    echo "fuzz: $name in $pkg FAILED" >&2
    exit 1
  done
  count=$((count + 1))
done < <(grep -rHoE --include='*_test.go' '^func (Fuzz[A-Za-z0-9_]+)' . | sed -E 's/:func /:/' | sort)
rm -f /tmp/fuzz-$$.log
[ "$count" -gt 0 ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }
echo "fuzz: $count targets passed, $FUZZ_TIME each"
