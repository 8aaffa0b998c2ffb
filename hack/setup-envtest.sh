#!/usr/bin/env bash
# Builds the envtest control-plane binaries (kube-apiserver, etcd, kubectl) from their Go
# modules, because the Go module proxy is the only source of binaries on our machines
# (docs/operations.md), plus kube-controller-manager, whose garbage collector the tests run to
# show that owner references really delete what a Partner owns. The result goes into the standard envtest asset directory and is reused:
# a second run returns at once. Prints the asset directory on stdout; progress goes to stderr.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
STAGING_VERSION="${STAGING_VERSION:-v0.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.8}"
ARCH="$(go env GOOS)-$(go env GOARCH)"
ROOT="${ENVTEST_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest}"
ASSETS="$ROOT/k8s/${K8S_VERSION}-${ARCH}"

log() { echo "setup-envtest: $*" >&2; }

KUBE_BINARIES=(kube-apiserver kubectl kube-controller-manager)
complete() {
  local b
  for b in etcd "${KUBE_BINARIES[@]}"; do [ -x "$ASSETS/$b" ] || return 1; done
}
if complete; then
  echo "$ASSETS"
  exit 0
fi

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
mkdir -p "$ASSETS"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

build_kube() {
  local dir="$work/kube"
  mkdir -p "$dir" && cd "$dir"
  go mod init envtest.local/kube >/dev/null 2>&1
  # The kubernetes module points its staging modules at ./staging; outside that repository
  # each must be replaced by its published version.
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@v${K8S_VERSION}"; exit 1; }
  local staging
  staging="$(grep -oE 'k8s\.io/[a-z0-9.-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u)"
  [ -n "$staging" ] || { log "no staging modules found in $gomod"; exit 1; }
  local m
  for m in $staging; do
    go mod edit -replace "$m=$m@$STAGING_VERSION"
  done
  go mod edit -require "k8s.io/kubernetes@v${K8S_VERSION}"
  log "resolving k8s.io/kubernetes@v${K8S_VERSION} ($(echo "$staging" | wc -l) staging modules)"
  local b pkgs=()
  for b in "${KUBE_BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b@v${K8S_VERSION}"); done
  go get "${pkgs[@]}" >&2
  for b in "${KUBE_BINARIES[@]}"; do
    [ -x "$ASSETS/$b" ] && continue
    log "building $b"
    go build -trimpath -ldflags="-s -w" -o "$ASSETS/$b.tmp" "k8s.io/kubernetes/cmd/$b"
    mv "$ASSETS/$b.tmp" "$ASSETS/$b"
  done
}

build_etcd() {
  local dir="$work/etcd"
  mkdir -p "$dir" && cd "$dir"
  go mod init envtest.local/etcd >/dev/null 2>&1
  log "resolving go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
  go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" \
    "go.etcd.io/etcd/api/v3@v${ETCD_VERSION}" \
    "go.etcd.io/etcd/client/pkg/v3@v${ETCD_VERSION}" \
    "go.etcd.io/etcd/client/v3@v${ETCD_VERSION}" \
    "go.etcd.io/etcd/pkg/v3@v${ETCD_VERSION}" >&2
  log "building etcd"
  go build -trimpath -ldflags="-s -w" -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
}

[ -x "$ASSETS/etcd" ] || (build_etcd)
complete || (build_kube)

"$ASSETS/kube-apiserver" --version >&2
"$ASSETS/kubectl" version --client >&2 || true
"$ASSETS/etcd" --version >&2
echo "$ASSETS"
