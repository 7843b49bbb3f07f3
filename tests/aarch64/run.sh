#!/usr/bin/env bash
# `make test-aarch64`: an emulated Raspberry Pi OS (Bookworm, aarch64) in user-mode qemu, from Debian and PyPI.
#
# 1. sysroot: Debian bookworm's arm64 Python 3.11.2 (Raspberry Pi OS Bookworm's) and its libraries, unpacked
#    from the .debs by tests/aarch64/debroot.py (signature-checked, nothing installed on this machine);
# 2. qemu: Debian trixie's static qemu-aarch64 10.x, unpacked from qemu-user's .deb (bookworm's qemu 7.2
#    segfaults in LiteRT 2.2+ and in ONNX Runtime); no binfmt: a `python3` wrapper runs qemu-aarch64 -L SYSROOT,
#    and every venv made from it points back at the wrapper, so subprocesses are emulated too;
# 3. an offline bundle: `deconv-edge bundle --platform linux-aarch64 --python 3.11` (PyPI's aarch64 wheels);
# 4. tests/aarch64/test_device.py (on this machine): `deploy --setup --check --bench` to the emulated device
#    over a real sshd, pip with no index reachable, the accuracy check there, a perturbed artifact refused;
# 5. the runtime tests (tests/edge_runtime) and tests/smoke.sh inside the emulated device's venv.
#
# Downloads are cached in $DCE_AARCH64_CACHE (default ~/.cache/deconv-edge/aarch64: .debs, indexes, pip's
# cache); the emulated device is rebuilt under $DCE_AARCH64_WORK (default .aarch64/, git-ignored) each run.
# Prints each stage's time.
# Env: HOST_PYTHON (default .venv/bin/python), DCE_QEMU_CPU (default cortex-a76, a Raspberry Pi 5's core).
#
# Only the downloads may make it skip: when Debian's archive or the package index cannot be reached (and the
# cache does not have what is needed), or this machine has no sshd, it prints a "warning: make test-aarch64
# skipped: ..." line and exits 0. Everything else that fails (a test, the smoke, a bad signature) exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CACHE=${DCE_AARCH64_CACHE:-$HOME/.cache/deconv-edge/aarch64}
WORK=${DCE_AARCH64_WORK:-$REPO/.aarch64}
HOST_PYTHON=${HOST_PYTHON:-$REPO/.venv/bin/python}
QEMU_CPU_MODEL=${DCE_QEMU_CPU:-cortex-a76}
SYSROOT=$CACHE/sysroot-bookworm-arm64
QEMU_DIR=$CACHE/qemu-trixie
export PIP_CACHE_DIR=$CACHE/pip
T_ALL=$SECONDS
stage() { echo "== aarch64: $1 ($((SECONDS - T_ALL)) s so far)"; }
skip() { echo "warning: make test-aarch64 skipped: $1; the emulated Raspberry Pi OS run did not happen" >&2; exit 0; }
# index_reachable: can this machine reach pip's package index (PIP_INDEX_URL, pip's configuration, or PyPI)?
index_reachable() {
  "$HOST_PYTHON" - <<'PY' >/dev/null 2>&1
import os, subprocess, sys, urllib.request
url = os.environ.get("PIP_INDEX_URL") or subprocess.run(
    [sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True, text=True).stdout.strip()
urllib.request.urlopen((url or "https://pypi.org/simple").rstrip("/") + "/pip/", timeout=20).close()
PY
}
# debroot ARGS...: tests/aarch64/debroot.py; exit status 75 is "the Debian archive is unreachable".
debroot() {
  local rc=0
  "$HOST_PYTHON" tests/aarch64/debroot.py "$@" || rc=$?
  [ "$rc" = 75 ] && skip "the Debian archive cannot be reached (see the error above)"
  return "$rc"
}
# from_index WHAT CMD...: a step that downloads from the package index; unreachable index => skip.
from_index() {
  local what=$1; shift
  "$@" && return 0
  index_reachable || skip "the package index cannot be reached for $what"
  echo "error: $what failed with the package index reachable" >&2
  exit 1
}

[ -x "$HOST_PYTHON" ] || { echo "error: $HOST_PYTHON missing: run make setup (or set HOST_PYTHON)" >&2; exit 2; }
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || skip "no sshd here (apt-get install openssh-server)"
mkdir -p "$CACHE"
rm -rf "$WORK"
mkdir -p "$WORK/bin"

stage "sysroot (Debian bookworm arm64: python3.11)"
debroot --suite bookworm --arch arm64 --cache "$CACHE/debian" --out "$SYSROOT" \
  python3.11-venv libstdc++6 libgcc-s1
# The device's pip must not read this machine's pip configuration (qemu -L looks in the sysroot first).
mkdir -p "$SYSROOT/etc/xdg/pip"
: >"$SYSROOT/etc/pip.conf"
: >"$SYSROOT/etc/xdg/pip/pip.conf"

stage "qemu-aarch64 (Debian trixie qemu-user)"
debroot --suite trixie --arch amd64 --cache "$CACHE/debian" --out "$QEMU_DIR" --no-deps \
  --keep usr/bin/qemu-aarch64 qemu-user
"$QEMU_DIR/usr/bin/qemu-aarch64" --version | head -1

# The device's python3. "$0" as argv[0]: a venv's bin/python (a link to this file) finds its pyvenv.cfg.
cat >"$WORK/bin/python3" <<EOF
#!/bin/sh
# Emulated Raspberry Pi OS Python (made by tests/aarch64/run.sh).
exec "$QEMU_DIR/usr/bin/qemu-aarch64" -cpu "\${DCE_QEMU_CPU:-$QEMU_CPU_MODEL}" -L "$SYSROOT" -0 "\$0" \\
  "$SYSROOT/usr/bin/python3.11" "\$@"
EOF
chmod +x "$WORK/bin/python3"
ln -s python3 "$WORK/bin/python3.11"
"$WORK/bin/python3" -c "import platform, sys; assert platform.machine() == 'aarch64'; print('device python', sys.version.split()[0], platform.machine())"
echo "setup: $((SECONDS - T_ALL)) s"

stage "offline bundle for linux-aarch64 / Python 3.11"
T=$SECONDS
M=edge_runtime/models
from_index "the offline bundle's wheels" "$HOST_PYTHON" -m edge_runtime bundle $M/sesr_x2_int8.tflite $M/sesr_x2_fp32.onnx $M/fsrcnn-s_x2_int8.tflite \
  --platform linux-aarch64 --python 3.11 -o "$WORK/bundle.tar.gz"
# pytest for the runtime tests on the device (and setuptools: test_deploy builds a wheel there), from the
# same index, into a second wheelhouse.
from_index "the device's test wheels" "$HOST_PYTHON" -m pip download -q --disable-pip-version-check --dest "$WORK/test-wheels" --only-binary=:all: \
  --implementation cp --python-version 3.11 --abi cp311 --platform manylinux_2_17_aarch64 pytest pytest-timeout \
  "setuptools>=68" wheel
echo "bundle: $((SECONDS - T)) s"

stage "deploy to the emulated device, accuracy there (tests/aarch64/test_device.py)"
T=$SECONDS
export DCE_AARCH64_PYTHON=$WORK/bin/python3 DCE_AARCH64_BUNDLE=$WORK/bundle.tar.gz DCE_AARCH64_HOME=$WORK/device-home
TF_CPP_MIN_LOG_LEVEL=2 "$HOST_PYTHON" -m pytest -q -p no:cacheprovider tests/aarch64/test_device.py -s
DEVICE_VENV=$WORK/device-home/deconv-edge/venv
echo "deploy tests: $((SECONDS - T)) s"

stage "runtime tests inside the emulated device"
T=$SECONDS
# No index is reachable from the device: everything comes from wheelhouses.
export PIP_CONFIG_FILE=/dev/null PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_FIND_LINKS=
"$DEVICE_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index --find-links "$WORK/test-wheels" \
  pytest pytest-timeout "setuptools>=68" wheel
if "$DEVICE_VENV/bin/python" -c "import tensorflow" >/dev/null 2>&1; then
  echo "error: the device venv can import tensorflow" >&2; exit 1
fi
DECONV_EDGE_RUNTIME_ONLY=1 "$DEVICE_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/edge_runtime --durations=15 \
  --timeout 900
echo "runtime tests: $((SECONDS - T)) s"

stage "smoke inside the emulated device"
T=$SECONDS
bash tests/smoke.sh "$DEVICE_VENV" "$WORK/smoke"
echo "smoke: $((SECONDS - T)) s"
echo "make test-aarch64: passed in $((SECONDS - T_ALL)) s"
