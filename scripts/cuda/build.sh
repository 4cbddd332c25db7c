#!/bin/bash
# Build `aniprint --features cuda` on a machine without the CUDA toolkit or a GPU (as checked on
# 2026-11-27 for an H200 with driver 580 / CUDA 13.0): nvcc and headers from PyPI, link stubs for
# the driver and CUDA libraries (the binary loads the real ones at run time), PTX for sm_90.
# Output: target-cuda/release/aniprint, or with `--example device_check` that check (no FFmpeg
# needed where it runs). Takes ~15-30 min on 2 cores (candle's kernels).
set -euo pipefail
cd "$(dirname "$0")/../.."
WHAT=(--bin aniprint)
[ $# -gt 0 ] && WHAT=("$@")
W=${CUDA_WORK:-../cuda}
mkdir -p "$W"
[ -x "$W/venv/bin/pip" ] || python3 -m venv "$W/venv"
"$W/venv/bin/pip" install -q "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" \
    "nvidia-cuda-cccl==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*"
C=$(echo "$W"/venv/lib/python3*/site-packages/nvidia/cu13)
C=$(cd "$C" && pwd)
ln -sf libcudart.so.13 "$C/lib/libcudart.so"
export PATH=$C/bin:$PATH CUDA_HOME=$C CUDA_PATH=$C CUDA_ROOT=$C CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda}
# Link stubs: every cu*/cublas*/curand*/nvrtc* symbol cudarc leaves undefined, in a library of the
# soname the real one has. A first build fails at the link; the stubs are made from its rlib.
S=$W/linkstubs
mkdir -p "$S"
export LIBRARY_PATH=$C/lib:$S
if ! cargo build --release --features cuda "${WHAT[@]}" 2>/dev/null; then
    R=$(ls "$CARGO_TARGET_DIR"/release/deps/libcudarc-*.rlib | head -1)
    python3 - "$R" "$S" <<'PY'
import re, subprocess, sys
rlib, out = sys.argv[1], sys.argv[2]
syms = sorted(set(subprocess.run(["nm", "-u", "--format=just-symbols", rlib],
                                 capture_output=True, text=True).stdout.split()))
libs = {"libcuda.so.1": lambda s: re.match(r"cu[A-Z]", s) and not s.startswith(("cublas", "curand")),
        "libcublasLt.so.13": lambda s: s.startswith("cublasLt"),
        "libcublas.so.13": lambda s: s.startswith("cublas") and not s.startswith("cublasLt"),
        "libcurand.so.10": lambda s: s.startswith("curand"),
        "libnvrtc.so.13": lambda s: s.startswith("nvrtc")}
for so, want in libs.items():
    c = f"{out}/{so}.c"
    open(c, "w").write("".join(f"void {s}(void) {{}}\n" for s in syms if want(s)))
    subprocess.run(["gcc", "-shared", "-fPIC", "-w", "-o", f"{out}/{so}", c, f"-Wl,-soname,{so}"], check=True)
    subprocess.run(["ln", "-sf", so, f"{out}/{so.split('.so')[0]}.so"], check=True)
PY
    cargo build --release --features cuda "${WHAT[@]}"
fi
echo "built with --features cuda: ${WHAT[*]} (in $CARGO_TARGET_DIR/release)"
