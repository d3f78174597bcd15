#!/usr/bin/env bash
# Build the pinned helm from the Go module proxy into a per-version cache outside the
# repository (skipped when cached). Prints the binary's path on the last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${MOONHUB_CACHE:-$HOME/.cache/moonhub}
bin="$cache/helm-$HELM_VERSION/bin"
if [ ! -x "$bin/helm" ]; then
  printf '[build %s] building helm %s from the Go module proxy ...\n' "$(date +%H:%M:%S)" "$HELM_VERSION" >&2
  t0=$(date +%s)
  mkdir -p "$bin"
  GOFLAGS="-buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$bin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  printf '[build %s] helm built in %ss\n' "$(date +%H:%M:%S)" "$(( $(date +%s) - t0 ))" >&2
fi
echo "$bin/helm"
