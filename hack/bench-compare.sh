#!/usr/bin/env bash
# `make bench-compare BASE=<commit>`: the bench harness of this tree measures the hookgate
# binary built from BASE and the one built from this tree, one after the other on the same
# machine, and prints each figure old and new with its change. Loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE="${1:?usage: hack/bench-compare.sh <commit>}"
OUT="${OUT:-bin/bench}"
mkdir -p "$OUT"
base_dir="$(mktemp -d)"
trap 'git worktree remove --force "$base_dir" >/dev/null 2>&1 || rm -rf "$base_dir"' EXIT
git worktree add --detach "$base_dir" "$BASE" >/dev/null
echo "building hookgate at $BASE ($(git rev-parse --short "$BASE")) and at this tree..." >&2
(cd "$base_dir" && CGO_ENABLED=0 go build -trimpath -o "$PWD/hookgate-base" .)
mv "$base_dir/hookgate-base" "$OUT/hookgate-base"
make --no-print-directory -s build
go build -o bin/hookgate-bench ./hack/bench
go build -o bin/local-control-plane ./hack/local-control-plane
# The whole-system rows run each binary against the CRDs of its own commit.
args=(--duration "${BENCH_DURATION:-8s}" --control-plane bin/local-control-plane ${BENCH_ARGS:-})
echo "measuring $BASE..." >&2
bin/hookgate-bench --hookgate "$OUT/hookgate-base" --commit "$(git rev-parse --short "$BASE")" --out "$OUT/base.json" --crd-dir "$base_dir/config/crd/bases" "${args[@]}" >/dev/null
echo "measuring this tree..." >&2
current="$(git rev-parse --short HEAD)"
git diff --quiet HEAD -- . || current="$current+changes"
bin/hookgate-bench --hookgate bin/hookgate --commit "$current" --out "$OUT/new.json" "${args[@]}" >/dev/null
bin/hookgate-bench compare "$OUT/base.json" "$OUT/new.json"
