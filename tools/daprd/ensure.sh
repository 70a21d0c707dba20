#!/usr/bin/env bash
# Prints the path of the daprd to use, building the pinned one if needed:
#   1. $DAPRD, if set;
#   2. ~/.dapr/bin/daprd, if it is a 1.18 build (users of the Dapr CLI);
#   3. the pinned build in the user cache, built from source on first use
#      (about 5 GB of modules and 5-8 minutes of compile on 2 cores).
# The cache is keyed by version and lives outside the clone, so every clone
# on the machine, CI's included, reuses one build.
set -euo pipefail

version=1.18.0
here=$(cd "$(dirname "$0")" && pwd)

if [[ -n "${DAPRD:-}" ]]; then
	[[ -x "$DAPRD" ]] || { echo "DAPRD=$DAPRD is not an executable" >&2; exit 1; }
	echo "$DAPRD"
	exit 0
fi

if [[ -x "$HOME/.dapr/bin/daprd" ]] && "$HOME/.dapr/bin/daprd" --version 2>/dev/null | grep -q '^1\.18\.'; then
	echo "$HOME/.dapr/bin/daprd"
	exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/fabrikam-dapr/$version"
if [[ -x "$cache/daprd" && -x "$cache/sentry" ]]; then
	echo "$cache/daprd"
	exit 0
fi

echo "building daprd and sentry $version into $cache (first time only; takes several minutes)" >&2
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
(
	cd "$here"
	# allcomponents is the tag release builds use; without it daprd has no
	# components, and stablecomponents lacks pubsub.jetstream.
	go build -tags allcomponents -trimpath \
		-ldflags "-X github.com/dapr/dapr/pkg/buildinfo.version=$version" \
		-o "$tmp/" github.com/dapr/dapr/cmd/daprd github.com/dapr/dapr/cmd/sentry
) >&2
# Moved into place only once complete, so an interrupted build is never used.
mv "$tmp/daprd" "$tmp/sentry" "$cache/"
echo "built daprd $version in $(( $(date +%s) - start ))s" >&2
echo "$cache/daprd"
