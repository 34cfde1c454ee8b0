#!/usr/bin/env bash
# Installs CRIU >= 4.2 (Debian sid) and crun >= 1.21 with libcriu2 (Debian trixie), plus the
# libraries they need, into a private prefix (default /opt/hangar/criu) — for the linux driver's
# checkpointed standby tier. Bookworm's CRIU 3.17 fails on new kernels and trixie's 4.1.1 on INET
# sockets; bookworm's crun 1.8 has no CRIU support.
#
# Only Debian's mirror is used (the one in /etc/apt/sources.list*, or $HANGAR_DEBIAN_MIRROR), with a
# private sources list and apt state under the prefix: the host's apt sources and packages are not
# touched. The .debs are unpacked with `dpkg -x`; wrappers in <prefix>/bin run the binaries through
# the unpacked glibc loader (`ld-linux --library-path`), so children they exec (tar, iptables…) keep
# the host's libraries. Idempotent; returns at once when already installed.
#
#   criu-install.sh [--force]          prints the prefix's bin dir on success
#   HANGAR_CRIU_PREFIX=/opt/hangar/criu
set -euo pipefail

PREFIX="${HANGAR_CRIU_PREFIX:-/opt/hangar/criu}"
# bump when the package set or the wrappers change
LAYOUT=1
STAMP="$PREFIX/.installed-v$LAYOUT"

log() { printf '\033[36m[criu-install]\033[0m %s\n' "$*" >&2; }
die() { printf '[criu-install] error: %s\n' "$*" >&2; exit 1; }

if [ "${1:-}" != --force ] && [ -f "$STAMP" ] && [ -x "$PREFIX/bin/criu" ] && [ -x "$PREFIX/bin/crun" ] && [ -f "$PREFIX/tools.json" ]; then
  echo "$PREFIX/bin"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "must run as root"

ARCH="$(dpkg --print-architecture)"
case "$ARCH" in
  amd64) TRIPLET=x86_64-linux-gnu; LOADER=ld-linux-x86-64.so.2 ;;
  arm64) TRIPLET=aarch64-linux-gnu; LOADER=ld-linux-aarch64.so.1 ;;
  *) die "unsupported architecture $ARCH" ;;
esac

# The Debian mirror the host already uses (deb822 .sources or one-line .list files).
mirror="${HANGAR_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror="$(awk '
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*URIs:/ { for (i = 2; i <= NF; i++) print $i; next }
      /^[[:space:]]*deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }
    ' "$f" | grep -E '/debian/?$' | grep -v -- '-security' | head -n1 || true)"
    [ -n "$mirror" ] && break
  done
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; set HANGAR_DEBIAN_MIRROR"
mirror="${mirror%/}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$KEYRING" ] || die "$KEYRING is missing (package debian-archive-keyring)"

# Private apt configuration: own sources list, lists, cache; an empty dpkg status (nothing counts
# as installed, so the whole library closure is resolved); no lock on the host's apt.
APTDIR="$PREFIX/apt"
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/etc/sources.list.d" "$APTDIR/etc/preferences.d" "$APTDIR/debs"
cat >"$APTDIR/etc/sources.list" <<EOF
deb [signed-by=$KEYRING] $mirror trixie main
deb [signed-by=$KEYRING] $mirror sid main
EOF
: >"$APTDIR/status"
APT=(
  -o "Dir::Etc::sourcelist=$APTDIR/etc/sources.list"
  -o "Dir::Etc::sourceparts=$APTDIR/etc/sources.list.d"
  -o "Dir::Etc::preferencesparts=$APTDIR/etc/preferences.d"
  -o "Dir::State=$APTDIR"
  -o "Dir::State::Lists=$APTDIR/lists"
  -o "Dir::State::status=$APTDIR/status"
  -o "Dir::Cache=$APTDIR/cache"
  -o "APT::Architecture=$ARCH"
  -o "APT::Architectures::=$ARCH"
  -o "APT::Install-Recommends=false"
  -o "Debug::NoLocking=true"
  -o "Acquire::Languages=none"
  -o "APT::Sandbox::User=root"
)

log "updating the private package lists (trixie, sid) from $mirror"
apt-get "${APT[@]}" -qq update >/dev/null

# Resolve the closure: criu/libcompel1/libcriu2 from sid (4.2.x), crun and everything else from
# trixie. Sid's libnl and libnet are needed by its criu. Falls back to sid's glibc if sid's
# packages come to need a newer one than trixie has.
WANT=(criu/sid libcompel1/sid libcriu2/sid libnl-3-200/sid crun/trixie)
resolve() { apt-get "${APT[@]}" -s -t trixie install "$@" 2>&1; }
plan="$(resolve "${WANT[@]}" libc6/trixie libbsd0/trixie)" || plan="$(resolve "${WANT[@]}")" || die "cannot resolve the packages: $plan"
mapfile -t pkgs < <(printf '%s\n' "$plan" | awk '$1 == "Inst" { v = $3; gsub(/[()]/, "", v); print $2 "=" v }')
[ "${#pkgs[@]}" -gt 0 ] || die "empty package plan: $plan"

log "downloading ${#pkgs[@]} packages"
rm -f "$APTDIR/debs/"*.deb
(cd "$APTDIR/debs" && apt-get "${APT[@]}" -qq download "${pkgs[@]}" >/dev/null)

# Unpack into a staging root, then swap it in.
STAGE="$PREFIX/root.new"
rm -rf "$STAGE"
mkdir -p "$STAGE"
for deb in "$APTDIR/debs/"*.deb; do dpkg -x "$deb" "$STAGE"; done
ld=""
for c in "$STAGE/usr/lib/$TRIPLET/$LOADER" "$STAGE/lib/$TRIPLET/$LOADER" "$STAGE/usr/lib64/$LOADER" "$STAGE/lib64/$LOADER"; do
  if [ -e "$c" ]; then ld="${c#"$STAGE"}"; break; fi
done
[ -n "$ld" ] || die "glibc loader $LOADER not found in the unpacked packages"
for b in usr/sbin/criu usr/bin/crun; do [ -x "$STAGE/$b" ] || die "$b missing from the unpacked packages"; done
rm -rf "$PREFIX/root.old"
[ -d "$PREFIX/root" ] && mv "$PREFIX/root" "$PREFIX/root.old"
mv "$STAGE" "$PREFIX/root"
rm -rf "$PREFIX/root.old"

# Wrappers: the unpacked loader with the unpacked libraries only.
R="$PREFIX/root"
LIBS="$R/usr/lib/$TRIPLET:$R/lib/$TRIPLET"
mkdir -p "$PREFIX/bin"
for pair in criu:usr/sbin/criu crun:usr/bin/crun; do
  name="${pair%%:*}"
  cat >"$PREFIX/bin/$name.tmp" <<EOF
#!/bin/sh
# $name from Debian, unpacked by criu-install.sh, run through its own glibc loader.
exec "$R$ld" --library-path "$LIBS" "$R/${pair#*:}" "\$@"
EOF
  chmod 0755 "$PREFIX/bin/$name.tmp"
  mv "$PREFIX/bin/$name.tmp" "$PREFIX/bin/$name"
done
printf '%s\n' "${pkgs[@]}" >"$PREFIX/packages.txt"
# the same, for the driver to exec without the wrappers' shell
cat >"$PREFIX/tools.json" <<EOF
{"loader": "$R$ld", "libraryPath": "$LIBS", "criu": "$R/usr/sbin/criu", "crun": "$R/usr/bin/crun"}
EOF

"$PREFIX/bin/criu" --version >&2 || die "the unpacked criu does not run"
"$PREFIX/bin/crun" --version | head -n1 >&2 || die "the unpacked crun does not run"
# keep the private apt state small: the lists are fetched again by the next (forced) install
rm -rf "$APTDIR/debs" "$APTDIR/cache" "$APTDIR/lists"
rm -f "$PREFIX"/.installed-v*
touch "$STAMP"
log "installed into $PREFIX"
echo "$PREFIX/bin"
