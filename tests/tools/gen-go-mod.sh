#!/usr/bin/env bash
# gen-go-mod.sh DIR MODULE VERSION REPLACE_VERSION PACKAGE...
# Writes a Go module in DIR that builds PACKAGEs of MODULE@VERSION from the Go module proxy.
# Modules like k8s.io/kubernetes and go.etcd.io/etcd/server/v3 replace their sibling modules
# with local paths (./staging/…, ../api), which `go install pkg@version` refuses; here every
# such module is replaced by the published one at REPLACE_VERSION instead (for Kubernetes
# 1.N.P the staging modules are v0.N.P; etcd's siblings share its version).
set -euo pipefail
dir="$1" module="$2" version="$3" replace_version="$4"; shift 4
mkdir -p "$dir"; cd "$dir"
printf 'module pushcluster.local/tools\n\ngo 1.24\n\nrequire %s %s\n' "$module" "$version" > go.mod
{
  printf '//go:build tools\n\npackage tools\n\nimport (\n'
  for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
  printf ')\n'
} > tools.go
gomod="$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -f "$gomod" ] || { echo "cannot read go.mod of $module@$version" >&2; exit 1; }
# Lines like `k8s.io/api => ./staging/src/k8s.io/api` or `go.etcd.io/etcd/api/v3 => ../api`.
# (etcd also "replaces" modules it forbids with ./FORBIDDEN_DEPENDENCY: those are not mapped.)
grep -v FORBIDDEN_DEPENDENCY "$gomod" \
  | sed -nE 's/^[[:space:]]*(replace[[:space:]]+)?([^[:space:]]+)[[:space:]]+=>[[:space:]]+\.\.?\/.*/\2/p' \
  | sort -u | while read -r m; do
    echo "replace $m => $m $replace_version" >> go.mod
  done
echo "$module@$version: $(grep -c '^replace' go.mod || true) local replaces mapped to $replace_version" >&2
go mod tidy >/dev/null
