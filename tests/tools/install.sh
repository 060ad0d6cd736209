#!/usr/bin/env bash
# Installs or builds every real service the tests use, into a versioned cache:
#   $PUSHCLUSTER_TOOLS (default ~/.cache/pushcluster/tools)/<tool>-<version>/bin/…
# and links each into $PUSHCLUSTER_TOOLS/bin. Idempotent: a second run only checks (seconds).
# Versions: tests/tools/versions.env. Kubernetes and etcd are built from the Go modules
# committed in tests/tools/k8s and tests/tools/etcd (go.mod + go.sum, see gen-go-mod.sh).
# A failed build does not stop the others; the script exits 1 at the end, naming what failed.
set -euo pipefail

start_time=$SECONDS
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
TOOLS="${PUSHCLUSTER_TOOLS:-$HOME/.cache/pushcluster/tools}"
BIN="$TOOLS/bin"
LOGS="$TOOLS/logs"
mkdir -p "$BIN" "$LOGS"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
failed=()
log() { printf '== %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# --- Debian packages ------------------------------------------------------------------------
need_debs=()
for pkg in $DEBIAN_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_debs+=("$pkg")
done
if ((${#need_debs[@]})); then
  log "apt-get install ${need_debs[*]}"
  # Do not let package scripts start system daemons: tests start their own instances on
  # free ports. (policy-rc.d exit 101 = "action forbidden" for invoke-rc.d.)
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f '"$policy" EXIT
  fi
  if $SUDO apt-get update -qq >"$LOGS/apt.log" 2>&1 &&
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${need_debs[@]}" >>"$LOGS/apt.log" 2>&1; then
    :
  else
    log "apt-get failed (see $LOGS/apt.log):"
    grep -E '^(E|W):' "$LOGS/apt.log" >&2 || tail -n 20 "$LOGS/apt.log" >&2
  fi
fi
for t in redis-server:/usr/bin/redis-server redis-cli:/usr/bin/redis-cli squid:/usr/sbin/squid \
  dnsmasq:/usr/sbin/dnsmasq openssl:/usr/bin/openssl protoc:/usr/bin/protoc; do
  name="${t%%:*}" path="${t#*:}"
  if [ -x "$path" ]; then
    ln -sf "$path" "$BIN/$name"
  else
    rm -f "$BIN/$name"
    failed+=("$name (Debian package)")
  fi
done

# --- PostgreSQL (FerretDB's backend in the tests) -------------------------------------------
# From Debian's `postgresql` package (in DEBIAN_PACKAGES). Its programs are not on PATH; the
# tests start private clusters with them (tests/support/src/postgres.rs), never the system one.
pg_bin="/usr/lib/postgresql/$POSTGRESQL_MAJOR/bin"
for name in initdb postgres pg_ctl; do
  if [ -x "$pg_bin/$name" ]; then
    ln -sf "$pg_bin/$name" "$BIN/$name"
  else
    rm -f "$BIN/$name"
    failed+=("$name (Debian package postgresql, $pg_bin)")
  fi
done

# --- Go builds ------------------------------------------------------------------------------
# Output of every build goes to $LOGS/<name>.log; lines where the module proxy refused
# something (404/410, "unknown revision", checksum mismatch) are collected for the summary.
refused_log="$LOGS/refused.txt"
: >"$refused_log"
note_refusals() {
  grep -E '404 Not Found|410 Gone|403 Forbidden|unknown revision|invalid version|verifying .*: checksum mismatch|no matching versions|reading https?://' \
    "$1" >>"$refused_log" 2>/dev/null || true
}

# go_build NAME DIR-NAME PACKAGE MODULE-DIR — `go build` of PACKAGE inside MODULE-DIR.
go_build() {
  local name="$1" dir="$TOOLS/$2" pkg="$3" moddir="$4"
  if [ -x "$dir/bin/$name" ]; then
    ln -sf "$dir/bin/$name" "$BIN/$name"
    return 0
  fi
  log "building $name ($2) — first run only, log: $LOGS/$name.log"
  mkdir -p "$dir/bin"
  local t0=$SECONDS
  if (cd "$moddir" && nice -n 10 go build -trimpath -ldflags "${GO_LDFLAGS:-}" \
    -o "$dir/bin/$name.tmp" "$pkg") >"$LOGS/$name.log" 2>&1; then
    mv "$dir/bin/$name.tmp" "$dir/bin/$name"
    ln -sf "$dir/bin/$name" "$BIN/$name"
    log "built $name in $((SECONDS - t0)) s"
  else
    rm -f "$dir/bin/$name.tmp" "$BIN/$name"
    note_refusals "$LOGS/$name.log"
    tail -n 15 "$LOGS/$name.log" >&2
    failed+=("$name $2 (go build, see $LOGS/$name.log)")
  fi
}

# check_module DIR MODULE VERSION — the committed go.mod must pin the version in versions.env.
check_module() {
  if grep -qE "^require $2 $3\$" "$1/go.mod"; then return 0; fi
  log "$1/go.mod does not require $2 $3 (versions.env): regenerate it with gen-go-mod.sh"
  return 1
}

# helm: `go install pkg@version`, its go.mod has no local replaces.
helm_dir="$TOOLS/helm-$HELM_VERSION"
if [ -x "$helm_dir/bin/helm" ]; then
  ln -sf "$helm_dir/bin/helm" "$BIN/helm"
else
  log "building helm ($HELM_VERSION) — first run only, log: $LOGS/helm.log"
  t0=$SECONDS
  rm -rf "$helm_dir/gobin"
  if GOBIN="$helm_dir/gobin" nice -n 10 go install -trimpath \
    -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$LOGS/helm.log" 2>&1; then
    mkdir -p "$helm_dir/bin"
    mv "$helm_dir/gobin/helm" "$helm_dir/bin/helm" && rm -rf "$helm_dir/gobin"
    ln -sf "$helm_dir/bin/helm" "$BIN/helm"
    log "built helm in $((SECONDS - t0)) s"
  else
    rm -f "$BIN/helm"
    note_refusals "$LOGS/helm.log"
    tail -n 15 "$LOGS/helm.log" >&2
    failed+=("helm $HELM_VERSION (go install, see $LOGS/helm.log)")
  fi
fi

# FerretDB: `go install …@version` builds a binary that refuses to start, because
# build/version/version.txt is generated in its git checkout and absent from the module zip
# (it is embedded). So: build a copy of the module source with that file filled in.
ferretdb_dir="$TOOLS/ferretdb-$FERRETDB_VERSION"
if [ ! -x "$ferretdb_dir/bin/ferretdb" ]; then
  log "building ferretdb ($FERRETDB_VERSION) — first run only, log: $LOGS/ferretdb.log"
  t0=$SECONDS
  src="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" 2>"$LOGS/ferretdb.log" |
    sed -n 's/.*"Dir": "\(.*\)".*/\1/p' || true)"
  if [ -n "$src" ] && [ -d "$src" ]; then
    rm -rf "$ferretdb_dir/src"
    mkdir -p "$ferretdb_dir/bin"
    cp -r "$src" "$ferretdb_dir/src" && chmod -R u+w "$ferretdb_dir/src"
    echo "$FERRETDB_VERSION" >"$ferretdb_dir/src/build/version/version.txt"
    if (cd "$ferretdb_dir/src" && nice -n 10 go build -trimpath \
      -o "$ferretdb_dir/bin/ferretdb.tmp" ./cmd/ferretdb) >>"$LOGS/ferretdb.log" 2>&1; then
      mv "$ferretdb_dir/bin/ferretdb.tmp" "$ferretdb_dir/bin/ferretdb"
      rm -rf "$ferretdb_dir/src"
      log "built ferretdb in $((SECONDS - t0)) s"
    else
      note_refusals "$LOGS/ferretdb.log"
      tail -n 15 "$LOGS/ferretdb.log" >&2
      failed+=("ferretdb $FERRETDB_VERSION (go build, see $LOGS/ferretdb.log)")
    fi
  else
    note_refusals "$LOGS/ferretdb.log"
    cat "$LOGS/ferretdb.log" >&2
    failed+=("ferretdb $FERRETDB_VERSION (module download)")
  fi
fi
if [ -x "$ferretdb_dir/bin/ferretdb" ]; then
  ln -sf "$ferretdb_dir/bin/ferretdb" "$BIN/ferretdb"
else
  rm -f "$BIN/ferretdb"
fi

# etcd: go.etcd.io/etcd/server/v3 is a main package, but its go.mod replaces sibling
# modules with local paths, which `go install pkg@version` refuses: tests/tools/etcd.
if check_module "$here/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"; then
  go_build etcd "etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$here/etcd"
else
  failed+=("etcd $ETCD_VERSION (tests/tools/etcd/go.mod out of date)")
fi

# Kubernetes: tests/tools/k8s requires k8s.io/kubernetes and replaces every staging module
# (k8s.io/api …) with its published v0.N.P. Stamp the version the binaries report (seen by
# helm and clients at /version).
k8s_minor="${K8S_VERSION#v1.}"
k8s_minor="${k8s_minor%%.*}"
if check_module "$here/k8s" k8s.io/kubernetes "$K8S_VERSION"; then
  export GO_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
-X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION \
-X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$k8s_minor"
  for name in kube-apiserver kube-controller-manager kubectl; do
    go_build "$name" "kubernetes-$K8S_VERSION" "k8s.io/kubernetes/cmd/$name" "$here/k8s"
  done
  unset GO_LDFLAGS
else
  failed+=("kubernetes $K8S_VERSION (tests/tools/k8s/go.mod out of date)")
fi

# --- Web client: node tools, chromium, schemathesis -----------------------------------------
# For clients/js (TypeScript compiler, terser to measure the minified size), the demo page's
# browser test (playwright-core driving Debian's chromium) and the OpenAPI fuzz test
# (schemathesis). Each is keyed by the hash of its committed lock file:
#   $TOOLS/node-<hash>/node_modules    from tests/tools/node/package-lock.json (npm ci), linked
#                                      as $TOOLS/node; the lock file is copied beside it so
#                                      tests can tell a stale install
#   $TOOLS/schemathesis-<hash>/        a venv from tests/tools/schemathesis/requirements.txt
web_tools() {
  local lock="$here/node/package-lock.json" key dir t0
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    failed+=("node + npm (Node >= 20, for clients/js and the browser test)")
  else
    key="$(sha256sum "$lock" | cut -c1-12)"
    dir="$TOOLS/node-$key"
    if ! cmp -s "$lock" "$dir/package-lock.json"; then
      log "npm ci (typescript, terser, playwright-core) — first run only, log: $LOGS/node.log"
      t0=$SECONDS
      rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
      cp "$here/node/package.json" "$lock" "$dir.tmp/"
      # --ignore-scripts: playwright-core has no browser download of its own; nothing to run.
      if (cd "$dir.tmp" && npm ci --ignore-scripts --no-audit --no-fund) >"$LOGS/node.log" 2>&1; then
        rm -rf "$dir" && mv "$dir.tmp" "$dir"
        log "installed node tools in $((SECONDS - t0)) s"
      else
        tail -n 15 "$LOGS/node.log" >&2
        rm -rf "$dir.tmp"
        failed+=("node tools (npm ci, see $LOGS/node.log)")
      fi
    fi
    [ -d "$dir/node_modules" ] && ln -sfn "$dir" "$TOOLS/node"
    ln -sf "$(command -v node)" "$BIN/node"
  fi

  if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
    log "apt-get install chromium (first run only, log: $LOGS/chromium.log)"
    t0=$SECONDS
    if $SUDO apt-get update -qq >"$LOGS/chromium.log" 2>&1 &&
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-liberation >>"$LOGS/chromium.log" 2>&1; then
      log "installed chromium in $((SECONDS - t0)) s"
    else
      grep -E '^(E|W):' "$LOGS/chromium.log" >&2 || tail -n 20 "$LOGS/chromium.log" >&2
    fi
  fi
  if [ -x /usr/bin/chromium ]; then
    ln -sf /usr/bin/chromium "$BIN/chromium"
  else
    rm -f "$BIN/chromium"
    failed+=("chromium (Debian package)")
  fi

  local req="$here/schemathesis/requirements.txt" python
  key="$(sha256sum "$req" | cut -c1-12)"
  dir="$TOOLS/schemathesis-$key"
  if [ ! -x "$dir/bin/schemathesis" ]; then
    log "pip install schemathesis into a venv — first run only, log: $LOGS/schemathesis.log"
    t0=$SECONDS
    python="$(command -v python3)"
    [ -x /usr/bin/python3 ] && python=/usr/bin/python3
    rm -rf "$dir"
    if "$python" -m venv "$dir" >"$LOGS/schemathesis.log" 2>&1 &&
      "$dir/bin/pip" install -q --no-input -r "$req" >>"$LOGS/schemathesis.log" 2>&1; then
      log "installed schemathesis in $((SECONDS - t0)) s"
    else
      tail -n 15 "$LOGS/schemathesis.log" >&2
      rm -rf "$dir"
      failed+=("schemathesis (pip, see $LOGS/schemathesis.log)")
    fi
  fi
  if [ -x "$dir/bin/schemathesis" ]; then
    ln -sf "$dir/bin/schemathesis" "$BIN/schemathesis"
  else
    rm -f "$BIN/schemathesis"
  fi
}
web_tools

# --- Report ---------------------------------------------------------------------------------
printf '%-24s %-64s %s\n' TOOL PATH VERSION
report() {
  local name="$1"
  shift
  local path version="MISSING"
  path="$(readlink "$BIN/$name" 2>/dev/null || true)"
  if [ -n "$path" ] && [ -x "$path" ]; then
    version="$("$path" "$@" 2>&1 | grep -v '^$' | head -n1 || true)"
  fi
  printf '%-24s %-64s %s\n' "$name" "${path:-—}" "$version"
}
report redis-server --version
report redis-cli --version
report squid -v
report dnsmasq --version
report openssl version
report protoc --version
report postgres --version
report initdb --version
report ferretdb --version
report etcd --version
report kube-apiserver --version
report kube-controller-manager --version
report kubectl version --client
report helm version --short
report node --version
report chromium --version
report schemathesis --version
if [ -s "$refused_log" ]; then
  log "the Go module proxy refused:"
  sort -u "$refused_log" >&2
fi
log "tools in $BIN ($((SECONDS - start_time)) s)"
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  echo "Every tool above is needed by the tests; fix the failures and run again (make tools)." >&2
  exit 1
fi
