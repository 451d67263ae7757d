#!/usr/bin/env bash
# Builds kube-apiserver and etcd from Go modules, once, into a versioned cache directory.
# There is no Docker engine and no download site on our machines, only the Go module proxy,
# so the control plane for integration tests is compiled from the pinned releases below.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${NSDISCOVERY_CACHE:-$HOME/.cache/airflow-provider-nsdiscovery}"
OUT="$CACHE_ROOT/controlplane-k8s-$K8S_VERSION-etcd-$ETCD_VERSION"

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" ]]; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "go is not installed: install Go >= 1.25 or set KUBEBUILDER_ASSETS" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
staging_version="v0.${K8S_VERSION#v1.}"
minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"

log() { echo "[build-controlplane] $*" >&2; }

log "kube-apiserver $K8S_VERSION (staging modules $staging_version)"
mkdir -p "$work/apiserver"
cd "$work/apiserver"
go mod init nsdiscovery.local/apiserver >/dev/null 2>&1
kmod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
{
  echo "require k8s.io/kubernetes $K8S_VERSION"
  grep -oE 'k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$kmod" \
    | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} >> go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
GOFLAGS=-mod=mod go mod tidy >&2
mkdir -p "$OUT.tmp"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" -o "$OUT.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver

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
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$OUT.tmp/etcd" .

rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
log "built into $OUT"
echo "$OUT"
