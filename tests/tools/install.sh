#!/usr/bin/env bash
# Installs or builds every real service the tests use, into a versioned cache:
#   $PUSHCLUSTER_TOOLS (default ~/.cache/pushcluster/tools)/<tool>-<version>/bin/…
# and links each into $PUSHCLUSTER_TOOLS/bin. Idempotent: a second run only checks.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
TOOLS="${PUSHCLUSTER_TOOLS:-$HOME/.cache/pushcluster/tools}"
BIN="$TOOLS/bin"
mkdir -p "$BIN"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
failed=()
log() { printf '== %s\n' "$*" >&2; }

# --- Debian packages ------------------------------------------------------------------------
need_debs=()
for pkg in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_debs+=("$pkg")
done
if ((${#need_debs[@]})); then
  log "apt-get install ${need_debs[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  # Do not let package scripts start system daemons: tests start their own instances.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f '"$policy" EXIT
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >/dev/null
fi
for t in redis-server:/usr/bin/redis-server redis-cli:/usr/bin/redis-cli squid:/usr/sbin/squid \
         dnsmasq:/usr/sbin/dnsmasq openssl:/usr/bin/openssl protoc:/usr/bin/protoc; do
  name="${t%%:*}"; path="${t#*:}"
  if [ -x "$path" ]; then ln -sf "$path" "$BIN/$name"; else failed+=("$name (Debian package)"); fi
done

# --- Go builds ------------------------------------------------------------------------------
# go_build NAME VERSION-DIR PACKAGE[@VERSION] [module dir]
go_build() {
  local name="$1" dir="$TOOLS/$2" pkg="$3" moddir="${4:-}"
  if [ -x "$dir/bin/$name" ]; then
    ln -sf "$dir/bin/$name" "$BIN/$name"; return 0
  fi
  log "building $name ($2) — first run only"
  mkdir -p "$dir/bin"
  local ok=0
  if [ -n "$moddir" ]; then
    (cd "$moddir" && nice -n 10 go build -trimpath -ldflags "${GO_LDFLAGS:-}" -o "$dir/bin/$name.tmp" "$pkg") && ok=1
  else
    GOBIN="$dir/bin.tmp" nice -n 10 go install -trimpath "$pkg" && \
      mv "$dir/bin.tmp/$(basename "${pkg%@*}")" "$dir/bin/$name.tmp" && rm -rf "$dir/bin.tmp" && ok=1
  fi
  if ((ok)); then
    mv "$dir/bin/$name.tmp" "$dir/bin/$name"
    ln -sf "$dir/bin/$name" "$BIN/$name"
  else
    failed+=("$name $2")
  fi
}

go_build helm "helm-$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"

# Modules whose go.mod replaces siblings with local paths (etcd, Kubernetes) are built from a
# generated module that maps those replaces to published versions (gen-go-mod.sh).
# module_build DIR-NAME MODULE VERSION REPLACE-VERSION NAME=PACKAGE...
module_build() {
  local dirname="$1" module="$2" version="$3" replace_version="$4"; shift 4
  local dir="$TOOLS/$dirname" all=1 spec
  for spec in "$@"; do [ -x "$dir/bin/${spec%%=*}" ] || all=0; done
  if ((all == 0)) && [ ! -f "$dir/module/go.sum" ]; then
    log "preparing a Go module for $module@$version"
    rm -rf "$dir/module"
    local pkgs=(); for spec in "$@"; do pkgs+=("${spec#*=}"); done
    "$here/gen-go-mod.sh" "$dir/module" "$module" "$version" "$replace_version" "${pkgs[@]}" \
      || { failed+=("$module $version (go.mod)"); return 0; }
  fi
  for spec in "$@"; do
    go_build "${spec%%=*}" "$dirname" "${spec#*=}" "$dir/module"
  done
}

# FerretDB: built from a copy of its module source with build/version/version.txt filled in
# (its binary refuses to start without one; only its git checkout generates it).
ferretdb_dir="$TOOLS/ferretdb-$FERRETDB_VERSION"
if [ ! -x "$ferretdb_dir/bin/ferretdb" ]; then
  log "building ferretdb ($FERRETDB_VERSION) — first run only"
  src="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  if [ -d "$src" ]; then
    rm -rf "$ferretdb_dir/src"; mkdir -p "$ferretdb_dir/bin"
    cp -r "$src" "$ferretdb_dir/src" && chmod -R u+w "$ferretdb_dir/src"
    echo "$FERRETDB_VERSION" > "$ferretdb_dir/src/build/version/version.txt"
    if (cd "$ferretdb_dir/src" && nice -n 10 go build -trimpath -o "$ferretdb_dir/bin/ferretdb.tmp" ./cmd/ferretdb); then
      mv "$ferretdb_dir/bin/ferretdb.tmp" "$ferretdb_dir/bin/ferretdb"
      rm -rf "$ferretdb_dir/src"
    else
      failed+=("ferretdb $FERRETDB_VERSION")
    fi
  else
    failed+=("ferretdb $FERRETDB_VERSION (module download)")
  fi
fi
[ -x "$ferretdb_dir/bin/ferretdb" ] && ln -sf "$ferretdb_dir/bin/ferretdb" "$BIN/ferretdb"
module_build "etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$ETCD_VERSION" \
  etcd=go.etcd.io/etcd/server/v3
# Stamp the version the binaries report (and that helm and clients see at /version).
k8s_minor="${K8S_VERSION#v1.}"; k8s_minor="${k8s_minor%%.*}"
GO_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
-X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
-X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor" \
module_build "kubernetes-$K8S_VERSION" k8s.io/kubernetes "$K8S_VERSION" "$K8S_STAGING_VERSION" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kubectl=k8s.io/kubernetes/cmd/kubectl

# --- Report ---------------------------------------------------------------------------------
printf '%-24s %-60s %s\n' TOOL PATH VERSION
report() {
  local name="$1"; shift
  local path; path="$(readlink -f "$BIN/$name" 2>/dev/null || true)"
  local version="missing"
  [ -x "$path" ] && version="$("$@" 2>&1 | head -n1 || true)"
  printf '%-24s %-60s %s\n' "$name" "${path:-—}" "$version"
}
report redis-server "$BIN/redis-server" --version
report squid "$BIN/squid" -v
report dnsmasq "$BIN/dnsmasq" --version
report openssl "$BIN/openssl" version
report ferretdb "$BIN/ferretdb" --version
report etcd "$BIN/etcd" --version
report kube-apiserver "$BIN/kube-apiserver" --version
report kube-controller-manager "$BIN/kube-controller-manager" --version
report kubectl "$BIN/kubectl" version --client
report helm "$BIN/helm" version --short
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
