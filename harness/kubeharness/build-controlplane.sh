#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules, once, into a
# versioned cache directory.
# There is no Docker engine and no download site on our machines, only the Go module proxy,
# so the control plane for integration tests is compiled from the pinned releases below.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${NSDISCOVERY_CACHE:-$HOME/.cache/airflow-provider-nsdiscovery}"
OUT="$CACHE_ROOT/controlplane-k8s-$K8S_VERSION-etcd-$ETCD_VERSION"

BINARIES=(kube-apiserver kube-controller-manager etcd)
missing=()
for binary in "${BINARIES[@]}"; do
  [[ -x "$OUT/$binary" ]] || missing+=("$binary")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "$OUT"
  exit 0
fi
wants() { [[ " ${missing[*]} " == *" $1 "* ]]; }

command -v go >/dev/null || { echo "go is not installed: install Go >= 1.25 or set KUBEBUILDER_ASSETS" >&2; exit 1; }
mkdir -p "$CACHE_ROOT"
work="$(mktemp -d)"
stage="$(mktemp -d "$OUT.tmp.XXXXXX")"
trap 'rm -rf "$work" "$stage"' EXIT
staging_version="v0.${K8S_VERSION#v1.}"
minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"

log() { echo "[build-controlplane] $*" >&2; }

# Only what is missing is built, and each binary is moved in by an atomic rename, so a cache
# from before kube-controller-manager joined is completed once without disturbing a test run
# that is using the binaries already there.
k8s_commands=()
for binary in kube-apiserver kube-controller-manager; do
  wants "$binary" && k8s_commands+=("$binary")
done
if [[ ${#k8s_commands[@]} -gt 0 ]]; then
  log "${k8s_commands[*]} $K8S_VERSION (staging modules $staging_version)"
  mkdir -p "$work/kubernetes"
  cd "$work/kubernetes"
  go mod init nsdiscovery.local/kubernetes >/dev/null 2>&1
  kmod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    grep -oE 'k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$kmod" \
      | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } >> go.mod
  {
    printf '//go:build tools\n\npackage tools\n\n'
    for binary in "${k8s_commands[@]}"; do
      echo "import _ \"k8s.io/kubernetes/cmd/$binary\""
    done
  } > tools.go
  GOFLAGS=-mod=mod go mod tidy >&2
  for binary in "${k8s_commands[@]}"; do
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$stage/$binary" "k8s.io/kubernetes/cmd/$binary"
  done
fi

if wants etcd; then
  log "etcd $ETCD_VERSION"
  mkdir -p "$work/etcd"
  cd "$work/etcd"
  go mod init nsdiscovery.local/etcd >/dev/null 2>&1
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" >> go.mod
  GOFLAGS=-mod=mod go mod tidy >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$stage/etcd" .
fi

mkdir -p "$OUT"
for binary in "${missing[@]}"; do
  mv "$stage/$binary" "$OUT/$binary"
done
log "built into $OUT"
echo "$OUT"
