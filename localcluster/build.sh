#!/usr/bin/env bash
# Build the pinned upstream Kubernetes (control plane, kubelet, kube-proxy), etcd, kwok and
# the node's add-ons (CoreDNS, kube-router's firewall, crictl, the image registry, the storage
# provisioner) from the Go
# module proxy into a per-version cache outside the repository. Skips everything when cached.
#
#   localcluster/build.sh            # prints the bin directory on the last line
#
# Versions come from localcluster/versions.env; the cache root from MOONHUB_CACHE
# (default ~/.cache/moonhub).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${MOONHUB_CACHE:-$HOME/.cache/moonhub}
bin="$cache/k8s-$K8S_VERSION-kwok-$KWOK_VERSION/bin"
want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok)

# the node's add-ons: name, Go package, version; each `go install`ed into its own folder
addons=(
  "coredns github.com/coredns/coredns $COREDNS_VERSION"
  "kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router $KUBE_ROUTER_VERSION"
  "crictl sigs.k8s.io/cri-tools/cmd/crictl $CRICTL_VERSION"
  "registry github.com/distribution/distribution/v3/cmd/registry $REGISTRY_VERSION"
  "local-path-provisioner github.com/rancher/local-path-provisioner $LOCAL_PATH_VERSION"
  "kueue sigs.k8s.io/kueue/cmd/kueue $KUEUE_VERSION"
  "prometheus github.com/prometheus/prometheus/cmd/prometheus $PROMETHEUS_VERSION"
  "promtool github.com/prometheus/prometheus/cmd/promtool $PROMETHEUS_VERSION"
)
# build tags and version stamps of an add-on, where it has any
addon_tags() {
  case $1 in
    # Prometheus without its cloud service discoveries (AWS, Azure, GCE, ...: most of its
    # compile), the Kubernetes one kept; its web UI is not embedded (the API serves all)
    prometheus|promtool) echo "remove_all_sd,enable_kubernetes_sd" ;;
  esac
}
addon_ldflags() {
  case $1 in
    prometheus|promtool)
      # 3.MM.P from the module's v0.3MM.P
      local v=${PROMETHEUS_VERSION#v0.}; v="${v%%.*}"; v="$((v / 100)).$((v % 100)).${PROMETHEUS_VERSION##*.}"
      echo "-X github.com/prometheus/common/version.Version=$v -X github.com/prometheus/common/version.Branch=moonhub" ;;
  esac
}
# ours, built in the wrapper module against the kubelet's device-plugin API (gpuplugin/main.go)
plugin_src="$here/gpuplugin/main.go"
plugin_sum=$(sha256sum "$plugin_src" | cut -c1-16)
addon_dir() { echo "$cache/addons/$1-$2"; }
for a in "${addons[@]}"; do want+=("${a%% *}"); done

want+=(pause moonhub-gpu-plugin kwok-stages/pod-complete.yaml kueue-manifests.yaml)

have_all() {
  for b in "${want[@]}"; do [ -e "$bin/$b" ] || return 1; done
  [ "$(cat "$bin/moonhub-gpu-plugin.sum" 2>/dev/null)" = "$plugin_sum" ] || return 1
  # an add-on link must point at the pinned version
  for a in "${addons[@]}"; do
    read -r name _ version <<<"$a"
    [ "$(readlink "$bin/$name")" = "$(addon_dir "$name" "$version")/$name" ] || return 1
  done
  [ "$(readlink "$bin/kueue-manifests.yaml")" = "$(addon_dir kueue "$KUEUE_VERSION")/kueue-manifests.yaml" ] || return 1
}
if have_all; then
  echo "local cluster binaries cached in $bin" >&2
  echo "$bin"
  exit 0
fi

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# one build at a time (up, ./moonhub images and the tests may all ask at once)
mkdir -p "$cache"; exec 9>"$cache/build.lock"
if ! flock -n 9; then log "another build of the local cluster's binaries runs; waiting for it"; flock 9; fi
if have_all; then echo "$bin"; exit 0; fi
start=$(date +%s)
work="$cache/build-k8s-$K8S_VERSION"
mkdir -p "$work" "$bin"
cd "$work"
export GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=local

if [ ! -f go.mod ]; then
  log "creating wrapper module for k8s.io/kubernetes $K8S_VERSION"
  go mod init moonhub.local/k8sbuild >/dev/null 2>&1
fi
log "reading the staging modules from the proxy's go.mod of k8s.io/kubernetes"
gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
staging_minor="v0.${K8S_VERSION#v1.}"
mods=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")
[ -n "$mods" ] || { log "no staging replaces found in $gomod"; exit 1; }
go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
for m in $mods; do go mod edit -replace="$m=$m@$staging_minor"; done
log "$(echo "$mods" | wc -l) staging modules pinned to $staging_minor"

# copy the upstream replaces/excludes that are not staging paths (they pin versions)
sed -n '/^replace (/,/^)/p' "$gomod" | grep -v './staging' | grep '=>' | while read -r l; do
  go mod edit -replace="$(echo "$l" | awk '{print $1"="$3"@"$4}')" || true
done || true

pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet
      k8s.io/kubernetes/cmd/kube-proxy go.etcd.io/etcd/server/v3)
# A tools file pins the commands as imports so that `go mod tidy` resolves them at the
# versions k8s.io/kubernetes requires (a bare `go get` would upgrade to the newest).
{ printf '//go:build tools\n\npackage tools\n\nimport (\n'
  for p in "${pkgs[@]}"; do printf '\t_ "%s"\n' "$p"; done
  printf ')\n'; } > tools.go
log "resolving dependencies (downloads modules on a cold cache)"
go mod tidy >&2
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
# One `go build` for every missing Kubernetes binary: the go command runs their compiles
# and links as one graph, so a link (single-threaded, tens of seconds each) overlaps other
# compiles instead of leaving a core idle; -v names each package compiled, counted for
# progress.
build_kubernetes() {
  local missing=() names=() p name total t0 out i src n line
  for p in "${pkgs[@]}"; do
    name=$(basename "$p"); [ "$name" = v3 ] && name=etcd
    [ -x "$bin/$name" ] || { missing+=("$p"); names+=("$name"); }
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  total=$(go list -deps -tags selinux,notest "${missing[@]}" | wc -l)
  log "building ${names[*]} (one go build; $total packages with the standard library's, cached ones skipped) ..."
  t0=$(date +%s)
  out="$work/out"; rm -rf "$out"; mkdir -p "$out"
  go build -v -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$out/" "${missing[@]}" 2>&1 | {
    n=0
    while IFS= read -r line; do
      # a package path alone on its line is one compiled; anything else (errors) passes on
      if [[ $line =~ ^[A-Za-z0-9._~/-]+$ ]]; then
        n=$((n + 1))
        if (( n % 250 == 0 )); then log "  kubernetes: $n packages compiled ($(( $(date +%s) - t0 ))s)"; fi
      else
        printf '%s\n' "$line" >&2
      fi
    done
  }
  for i in "${!missing[@]}"; do
    # go names a binary after its package path's last element, or the one before a /vN suffix
    src=$(basename "${missing[$i]}"); [ "$src" = v3 ] && src=$(basename "$(dirname "${missing[$i]}")")
    mv "$out/$src" "$bin/${names[$i]}"
  done
  log "${names[*]} built in $(( $(date +%s) - t0 ))s"
}

build_kwok() {
  [ -x "$bin/kwok" ] && return 0
  log "building kwok $KWOK_VERSION ..."
  local t0; t0=$(date +%s)
  rm -rf "$work/gobin-kwok"
  GOBIN="$work/gobin-kwok" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$work/gobin-kwok/kwok" "$bin/kwok"
  log "kwok built in $(( $(date +%s) - t0 ))s"
}

build_addon() {  # name package version
  local name=$1 pkg=$2 version=$3 dir t0
  dir=$(addon_dir "$name" "$version")
  [ -x "$dir/$name" ] && return 0
  log "building add-on $name $version ($pkg) ..."
  t0=$(date +%s)
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  (cd "$work" && GOBIN="$dir.tmp" GOFLAGS=-buildvcs=false go install -trimpath -tags "$(addon_tags "$name")" \
    -ldflags "-s -w $(addon_ldflags "$name")" "$pkg@$version")
  # `go install` names the binary after the package's last element
  mv "$dir.tmp/$(basename "$pkg")" "$dir.tmp/$name" 2>/dev/null || true
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  log "add-on $name built in $(( $(date +%s) - t0 ))s"
}

# Two builds at a time, the large one first: each go command compiles on every core, but
# its serial phases (loading modules, linking) leave cores idle that the other one fills.
# A failed build leaves a mark; the others finish (their results are cached for next time).
failed="$work/failed"; rm -rf "$failed"; mkdir -p "$failed"
jobs_run() {  # label command...
  local label=$1; shift
  while [ "$(jobs -rp | wc -l)" -ge "${MOONHUB_BUILD_JOBS:-2}" ]; do wait -n || true; done
  # (not `"$@" || ...`: bash ignores set -e inside a command that is tested)
  ( trap '[ $? -eq 0 ] || { log "building $label failed"; touch "$failed/$label"; }' EXIT; "$@" ) &
}
jobs_run kubernetes build_kubernetes
jobs_run kwok build_kwok
for a in "${addons[@]}"; do
  read -r name pkg version <<<"$a"
  jobs_run "$name" build_addon "$name" "$pkg" "$version"
done
wait
if [ -n "$(ls -A "$failed")" ]; then
  log "failed: $(ls "$failed" | tr '\n' ' ')(the errors are above)"
  exit 1
fi
for a in "${addons[@]}"; do
  read -r name _ version <<<"$a"
  ln -sfn "$(addon_dir "$name" "$version")/$name" "$bin/$name"
done
if [ ! -f "$bin/kwok-stages/pod-complete.yaml" ]; then
  # kwok's default pod stages, to run with one of ours (localcluster/nodes.py)
  src="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/kustomize/stage/pod/fast"
  mkdir -p "$bin/kwok-stages" && cp "$src"/pod-*.yaml "$bin/kwok-stages/"
  log "kwok's pod stages copied from $src"
fi
kueue_manifests="$(addon_dir kueue "$KUEUE_VERSION")/kueue-manifests.yaml"
if [ ! -f "$kueue_manifests" ]; then
  # Kueue's own install manifests (CRDs, RBAC, webhooks, the manager), rendered from the
  # module's kustomize tree as its releases are; localcluster/kueue.py adapts them
  src="$(go mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/config/default"
  "$bin/kubectl" kustomize "$src" > "$kueue_manifests.tmp"
  mv "$kueue_manifests.tmp" "$kueue_manifests"
  log "Kueue's manifests rendered from $src"
fi
ln -sfn "$kueue_manifests" "$bin/kueue-manifests.yaml"
if [ ! -x "$bin/pause" ]; then
  # the pause container: upstream's pause.c from the k8s.io/kubernetes module, static
  src="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')/build/pause/linux/pause.c"
  log "building the pause binary from $src (gcc -static)"
  gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION-moonhub" -o "$bin/pause.tmp" "$src"
  mv "$bin/pause.tmp" "$bin/pause"
fi
if [ "$(cat "$bin/moonhub-gpu-plugin.sum" 2>/dev/null)" != "$plugin_sum" ] || [ ! -x "$bin/moonhub-gpu-plugin" ]; then
  log "building moonhub-gpu-plugin (simulated GPUs through the kubelet's device-plugin API)"
  t0=$(date +%s)
  mkdir -p "$work/gpuplugin" && cp "$plugin_src" "$work/gpuplugin/main.go"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$bin/moonhub-gpu-plugin" ./gpuplugin)
  echo "$plugin_sum" > "$bin/moonhub-gpu-plugin.sum"
  log "moonhub-gpu-plugin built in $(( $(date +%s) - t0 ))s"
fi
have_all
log "done in $(( $(date +%s) - start ))s: $bin"
echo "$bin"
