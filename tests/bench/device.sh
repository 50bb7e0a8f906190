#!/usr/bin/env bash
# tick_to_order on a host with a core per stage (issue 12 item 5), where nothing can be installed
# from the network: the lent device machine (16 cores, Python 3.12 with numpy and onnxruntime,
# no package index). docs/bench-tick-to-order.md, "On a host with a core per stage".
#
#   tests/bench/device.sh prep          here (network, a python3.12 with its headers: PY312):
#                                       .device/whl (wheels the machine lacks, this venv's
#                                       versions) and .device/so (the C extensions for 3.12)
#   tests/bench/device.sh run [quick]   there, from the repository root, .device carried:
#                                       install, check the imports, run the bench; results and
#                                       log to $OUT (else .bench/)
#
# Nothing in tests or CI uses it: the bench chooses its layout from the cores it may use
# (tests/bench/_tick_group.py, BITRADER_BENCH_LAYOUT), so the same command runs anywhere.
set -euo pipefail

DEV=.device
# what the machine's image lacks (its package list: the device tool's KINDS.md), with what they
# need that it lacks too; numpy, onnxruntime, h5py, uvloop, psutil, prometheus-client, aiohttp,
# matplotlib, tqdm, pytest and hypothesis are there
WHEELS="pyzmq msgspec picows python-socks aiofastnet supervisor websockets multiprocess dill cryptography
cffi pycparser"

build_exts() {  # $1: the python whose headers and ABI to build for; $2: the output root
    # the C extensions as pyproject.toml declares them (name, sources, compile and link args)
    "$1" - "$2" <<'EOF'
import subprocess, sys, sysconfig, tomllib
from pathlib import Path
out = Path(sys.argv[1])
include, suffix = sysconfig.get_paths()["include"], sysconfig.get_config_var("EXT_SUFFIX")
for ext in tomllib.loads(Path("pyproject.toml").read_text())["tool"]["setuptools"]["ext-modules"]:
    target = out / (ext["name"].replace(".", "/") + suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cc", "-shared", "-fPIC", *ext.get("extra-compile-args", []), "-I", include,
                    *ext["sources"], *ext.get("extra-link-args", []), "-o", str(target)],
                   check=True)
    print("built", target)
EOF
}

prep() {
    py312=${PY312:-python3.12}
    "$py312" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version' || {
        echo "prep needs a Python 3.12 with its headers (PY312=...): the machine runs 3.12" >&2
        exit 2
    }
    rm -rf "$DEV" && mkdir -p "$DEV/whl"
    pins="" frozen=$(.venv/bin/python -m pip freeze)
    for name in $WHEELS; do  # the versions the tests ran with here
        pins="$pins $(grep -i "^$name==" <<<"$frozen" || echo "$name")"
    done
    # shellcheck disable=SC2086
    .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 -d "$DEV/whl" $pins
    build_exts "$py312" "$DEV/so"
    du -sh "$DEV"
    echo "carry $DEV: tests/bench/device.sh run"
}

run() {
    out=${OUT:-.bench}
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$DEV"/whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
    cp -R "$DEV/so/." .  # the extensions, beside their sources
    exts=$(python3 -c 'import tomllib; print(", ".join(e["name"] for e in tomllib.load(
        open("pyproject.toml", "rb"))["tool"]["setuptools"]["ext-modules"]))')
    python3 -c "import $exts" 2>/dev/null || build_exts python3 .  # another ABI: build there
    python3 -c '
import os, sys
import zmq, msgspec, picows, supervisor, websockets, multiprocess, onnxruntime, h5py, uvloop
import '"$exts"'
from tests.bench._tick_group import layout
print(sys.version.split()[0], "cores", len(os.sched_getaffinity(0)), "layout", layout())'
    quick=""
    [ "${1:-}" = quick ] && quick=--quick
    rc=0
    PYTHONUNBUFFERED=1 python3 -m tests.bench.run $quick tick_to_order 2>&1 | tee "$out/device.log" \
        || rc=$?
    [ -f .bench/results.json ] && [ "$out" != .bench ] && cp .bench/results.json "$out/"
    exit "$rc"
}

case "${1:-}" in
    prep) prep ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 prep | run [quick]" >&2; exit 2 ;;
esac
