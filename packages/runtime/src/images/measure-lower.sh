#!/usr/bin/env bash
# Compares a plain directory with a mounted EROFS image as the overlay lower of sandboxes:
# overlay mount time, page-cache sharing between sandboxes, cold/warm start of python3 and node.
# Usage (root): measure-lower.sh <mounted base image rootfs>   e.g. .../images/<id>/rootfs
set -euo pipefail
SRC=${1:?usage: measure-lower.sh <mounted image rootfs>}
N=${N:-20}
W=$(mktemp -d /var/tmp/hangar-lower.XXXXXX)
cleanup() {
  for m in $(awk -v w="$W" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$W"
}
trap cleanup EXIT
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1000000 }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "# preparing: plain dir copy, uncompressed EROFS, lz4hc EROFS"
mkdir -p "$W/dir" "$W/e" "$W/z"
# e: uncompressed EROFS (file-backed), dio: same with -o directio, z: lz4hc EROFS (file-backed), loop: uncompressed EROFS on a loop device
cp -a "$SRC/." "$W/dir/"
t0=$(date +%s%N); mkfs.erofs --quiet --preserve-mtime "$W/plain.erofs" "$W/dir"; t1=$(date +%s%N)
mkfs.erofs --quiet --preserve-mtime -zlz4hc "$W/lz4hc.erofs" "$W/dir"; t2=$(date +%s%N)
echo "mkfs.erofs plain: $(ms $t0 $t1) ms, $(du -m "$W/plain.erofs" | cut -f1) MB; lz4hc: $(ms $t1 $t2) ms, $(du -m "$W/lz4hc.erofs" | cut -f1) MB; dir: $(du -xsm "$W/dir" | cut -f1) MB, $(find "$W/dir" | wc -l) inodes"
# file-backed EROFS mount (what the store does), as the perl one-liner in erofs.ts
fmount() { perl -e 'my ($s,$t,$f,$o)=@ARGV; syscall(165,$s,$t,$f,7,$o)==0 or die "mount: $!\n"' "$1" "$2" erofs "${3:-}"; }
t0=$(date +%s%N); fmount "$W/plain.erofs" "$W/e"; t1=$(date +%s%N)
fmount "$W/lz4hc.erofs" "$W/z"
mkdir -p "$W/dio"; fmount "$W/plain.erofs" "$W/dio" directio
mkdir -p "$W/loop"; t2=$(date +%s%N); mount -t erofs -o ro "$W/plain.erofs" "$W/loop"; t3=$(date +%s%N)
echo "erofs mount: file-backed $(ms $t0 $t1) ms, loop device (mount(8)) $(ms $t2 $t3) ms (each includes starting the helper process)"

for kind in dir e dio z loop; do
  lower="$W/$kind"
  mkdir -p "$W/ov-$kind"
  sync; echo 3 > /proc/sys/vm/drop_caches
  c0=$(awk '/^Cached:/ {print $2}' /proc/meminfo)
  t0=$(date +%s%N)
  for i in $(seq 1 "$N"); do
    d="$W/ov-$kind/$i"; mkdir -p "$d/up" "$d/work" "$d/m"
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$d/up,workdir=$d/work" "$d/m"
  done
  t1=$(date +%s%N)
  # cold: first sandbox starts python3 and node; warm: the other sandboxes do the same
  a0=$(date +%s%N); chroot "$W/ov-$kind/1/m" python3 -c 'import json, ssl, http.client' ; chroot "$W/ov-$kind/1/m" node -e 'require("http")'; a1=$(date +%s%N)
  c1=$(awk '/^Cached:/ {print $2}' /proc/meminfo)
  b0=$(date +%s%N)
  for i in $(seq 2 "$N"); do chroot "$W/ov-$kind/$i/m" python3 -c 'import json, ssl, http.client'; chroot "$W/ov-$kind/$i/m" node -e 'require("http")'; done
  b1=$(date +%s%N)
  c2=$(awk '/^Cached:/ {print $2}' /proc/meminfo)
  echo "lower=$kind: $N overlay mounts $(ms $t0 $t1) ms ($(div "$(ms $t0 $t1)" "$N") ms each); cold python3+node $(ms $a0 $a1) ms, page cache +$(( (c1 - c0) / 1024 )) MB; warm x$((N-1)) $(div "$(ms $b0 $b1)" $((N-1))) ms each, page cache +$(( (c2 - c1) / 1024 )) MB more"
done
