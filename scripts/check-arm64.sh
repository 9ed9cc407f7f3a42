#!/usr/bin/env bash
# Does edgecnn[edge] run on ARM64 (Jetson, Raspberry Pi, i.MX boards) and give the same answer?
#
# Builds a Debian arm64 root with debootstrap, runs it through qemu-user-static (both from Debian's
# own packages), installs edgecnn[edge] there (edgecnn as a wheel built from this checkout, every
# dependency from the package index: numpy, pillow, ai-edge-litert, onnxruntime, opencv), scans a
# real field of view (a patient's mosaic) with the release int8 model, and checks that every tile
# label equals the x86 one. Timing under emulation means nothing; the labels do.
#
# Needs: root, a Debian/Ubuntu host, network to deb.debian.org and PyPI, $EDGECNN_DATA.
# Takes ~7 min for debootstrap, ~5 min for pip under emulation, then a minute to scan.
# Not part of .ci/run (too slow, needs root).
#
# Example:  sudo EDGECNN_DATA=~/idc scripts/check-arm64.sh
# Env:      ARM64_ROOT (default /var/tmp/edgecnn-arm64: kept, so a rerun skips debootstrap),
#           ARM64_SUITE (bookworm: Python 3.11), PATIENT (14082), MODEL (release int8 TFLite),
#           CHECK_OUT (where the two JSON results and the verdict go; default $ARM64_ROOT-out)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${ARM64_ROOT:-/var/tmp/edgecnn-arm64}
SUITE=${ARM64_SUITE:-bookworm}
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
PATIENT=${PATIENT:-14082}
MODEL=${MODEL:-$REPO/exported/release/basic_cnn-int8-qat.tflite}
OUT=${CHECK_OUT:-$ROOT-out}
HOSTPY=${HOSTPY:-$REPO/.venv/bin/python}
: "${EDGECNN_DATA:?set EDGECNN_DATA to a Kaggle-layout IDC folder (the frame is a real patient mosaic)}"
DATA_DIR=${EDGECNN_DATA%%:*}

say() { printf '\n== %s\n' "$*"; }
die() { printf 'check-arm64: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it), e.g. sudo -E $0"
[ -d "$DATA_DIR/$PATIENT" ] || die "$DATA_DIR/$PATIENT: no such patient folder; set PATIENT to one with a full patch grid (8863, 10253, 10254, 14082)"
[ -f "$MODEL" ] || die "$MODEL: no release model; pass MODEL=path/to/model.tflite (with its .json manifest)"
mkdir -p "$OUT"

say "host tools: debootstrap, qemu-user-static, binfmt-support (Debian packages)"
if ! command -v debootstrap >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq debootstrap qemu-user-static binfmt-support
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
fi
update-binfmts --enable qemu-aarch64 2>/dev/null || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)"

if [ ! -x "$ROOT/usr/bin/python3" ]; then
  say "debootstrap $SUITE arm64 into $ROOT (~7 min)"
  rm -rf "$ROOT"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$SUITE" "$ROOT" "$MIRROR"
else
  say "reusing the arm64 root in $ROOT"
fi

cleanup() {
  for m in proc dev/pts dev; do mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m" || true; done
}
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"
# No /sys: the host's (x86) CPU topology there crashes the arm64 cpuinfo code of LiteRT and
# ONNX Runtime under qemu; without it they only print "Error in cpuinfo" and go on.
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# A host behind a TLS-inspecting proxy trusts extra CAs (/usr/local/share/ca-certificates): the
# arm64 root must trust the same ones, or pip cannot reach the package index from it.
# (update-ca-certificates under emulation takes minutes; the bundle is plain PEM: append on the host.)
BUNDLE="$ROOT/etc/ssl/certs/ca-certificates.crt"
for c in /usr/local/share/ca-certificates/*.crt; do
  [ -f "$c" ] || continue
  grep -qxF "$(grep -m1 -v -e '^-----' -e '^$' "$c")" "$BUNDLE" || { cat "$c"; echo; } >> "$BUNDLE"
done
CHROOT_ENV="PATH=/usr/bin:/bin:/usr/sbin HOME=/root PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1"

say "the frame: patient $PATIENT's mosaic, and the x86 scan of it"
W="$ROOT/opt/edgecnn-check"
rm -rf "$W" && mkdir -p "$W/model" "$W/wheel"
"$HOSTPY" -m edgecnn.cli data mosaic "$DATA_DIR/$PATIENT" --out "$W/frame.png" --json "$OUT/mosaic.json"
cp "$MODEL" "$MODEL.json" "$W/model/"
"$HOSTPY" -m edgecnn.cli scan "$W/frame.png" --model "$MODEL" --threads 1 --out "$OUT/x86" --json "$OUT/x86.json"

say "edgecnn wheel from this checkout; install edgecnn[edge] in the arm64 root from the package index"
"$HOSTPY" -m pip wheel -q --no-deps "$REPO" -w "$W/wheel"   # isolated: the SPDX licence needs setuptools >= 77
WHEEL=$(basename "$(ls "$W"/wheel/edgecnn-*.whl | head -1)")
chroot "$ROOT" /usr/bin/env -i $CHROOT_ENV /bin/sh -ec "
  uname -m
  [ -x /opt/venv/bin/pip ] || python3 -m venv /opt/venv
  /opt/venv/bin/pip install --force-reinstall --no-deps -q '/opt/edgecnn-check/wheel/$WHEEL'
  /opt/venv/bin/pip install -q '/opt/edgecnn-check/wheel/$WHEEL[edge]'
  /opt/venv/bin/pip list 2>/dev/null | grep -iE '^(edgecnn|numpy|ai-edge-litert|onnxruntime|opencv)'
"

say "scan the frame on arm64 (under qemu: slow, and its timing means nothing)"
chroot "$ROOT" /usr/bin/env -i $CHROOT_ENV /bin/sh -ec "
  cd /opt/edgecnn-check
  python3 -c 'import platform; print(platform.machine())'
  /opt/venv/bin/edgecnn scan frame.png --model model/$(basename "$MODEL") --threads 1 --out arm64-out --json arm64.json
  /opt/venv/bin/python -c 'import sys; import edgecnn.scan; assert \"tensorflow\" not in sys.modules'
"
cp "$W/arm64.json" "$OUT/arm64.json"

say "compare the tile labels"
"$HOSTPY" - "$OUT/x86.json" "$OUT/arm64.json" "$OUT/verdict.json" <<'EOF'
import json, sys
x86, arm = (json.load(open(p))["images"][0] for p in sys.argv[1:3])
thr = x86["threshold"]
a = [v for row in x86["grid"] for v in row]
b = [v for row in arm["grid"] for v in row]
assert len(a) == len(b), f"grids differ in size: {len(a)} vs {len(b)} tiles"
tissue_same = all((u is None) == (v is None) for u, v in zip(a, b))
pairs = [(u, v) for u, v in zip(a, b) if u is not None and v is not None]
labels_same = sum((u >= thr) == (v >= thr) for u, v in pairs)
verdict = {"tiles": len(a), "tissue_tiles_x86": x86["tissue_tiles"], "tissue_tiles_arm64": arm["tissue_tiles"],
           "same_tissue_mask": tissue_same, "equal_labels": labels_same, "compared": len(pairs),
           "max_abs_dp": max((abs(u - v) for u, v in pairs), default=0.0),
           "idc_share_x86": x86["idc_share"], "idc_share_arm64": arm["idc_share"],
           "ok": tissue_same and labels_same == len(pairs)}
json.dump(verdict, open(sys.argv[3], "w"), indent=2)
print(json.dumps(verdict, indent=2))
sys.exit(0 if verdict["ok"] else 1)
EOF
say "arm64 tile labels equal the x86 ones ($OUT/verdict.json)"
