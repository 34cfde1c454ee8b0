#!/usr/bin/env bash
# Installs whatever Hangar needs and is missing, idempotently: Debian packages, npm packages,
# the build. Fast when everything is already there. Used by `npm start`, `npm test`, `npm run bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[36m[ensure]\033[0m %s\n' "$*" >&2; }

mode="${1:-start}"   # start | test | bench

# Debian packages: command -> package. The runtime's, then what tests and benchmarks add.
declare -A DEB=(
  [crun]=crun
  [debootstrap]=debootstrap
  [mkfs.erofs]=erofs-utils
  [umoci]=umoci
  [skopeo]=skopeo
  [nft]=nftables
  [ip]=iproute2
  [runsc]=runsc
  [rg]=ripgrep
  [gcc]=gcc
  [make]=make
  [buildah]=buildah
  [newuidmap]=uidmap
  [runc]=runc
  [lxcfs]=lxcfs
)
if [ "$mode" = test ] || [ "$mode" = bench ]; then
  DEB[chromium]=chromium
  DEB[docker-registry]=docker-registry
fi
if [ "$mode" = bench ]; then
  DEB[podman]=podman
  DEB[runc]=runc
  DEB[nginx]=nginx
  DEB[wrk]=wrk
fi
missing=()
for cmd in "${!DEB[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${DEB[$cmd]}"); done
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || missing+=(libc6-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Hangar needs these Debian packages: ${missing[*]} (run as root or install them)" >&2; exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CRIU >= 4.2 for the checkpointed standby tier, in a private prefix (Debian sid via the mirror),
# for every mode: the tier is part of the product. Without it standby stays in the frozen tier
# (the server says so at start) and the checkpoint tests are skipped.
if [ "$(id -u)" = 0 ]; then
  bash packages/runtime/src/linux/criu-install.sh >/dev/null ||
    log "warning: CRIU could not be installed; the checkpointed standby tier stays off"
fi

# npm packages (workspaces), exactly as locked; again when the lockfile changed since the install
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# build: the agent binary and the TypeScript packages (both incremental)
log "building"
npm run --silent build

# The base image, built once per machine into the shared cache (tests and benchmarks use it).
if [ "$mode" = test ] || [ "$mode" = bench ]; then
  log "ensuring the base image (built once per machine, ~1 min the first time)"
  node packages/runtime/dist/images/prebuild.js >/dev/null
fi
