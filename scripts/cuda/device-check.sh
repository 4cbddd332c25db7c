#!/bin/bash
# CUDA check for aniprint: a --features cuda build (made on the CPU machine) trains both models on
# the GPU for a bounded time, and the same commands run on the CPU for comparison.
cd "$(dirname "$0")"
mkdir -p /tmp/l && tar xJf libs.txz -C /tmp/l
xz -dc aniprint.xz > /tmp/aniprint && chmod +x /tmp/aniprint
NV=$(dirname "$(find / -name 'libcublas.so.13*' -not -path '/proc/*' 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=/tmp/l/stubs:$NV
echo "cublas at $NV"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
ldd /tmp/aniprint | grep "not found"
A=/tmp/aniprint
$A --version
run() { local name=$1 secs=$2; shift 2; local t0=$(date +%s)
  timeout $secs $A -q "$@" > $OUT/$name.out 2>&1; echo "$name rc=$? wall=$(( $(date +%s) - t0 ))s" | tee -a $OUT/summary.txt; }
run fp-cuda 170 train fingerprint --corpus corpus --cache /tmp/cache --state /tmp/fpc --steps 400 --val-every 200 --checkpoint-every 100 --out /tmp/fpc/out --device cuda
cp /tmp/fpc/log.csv $OUT/fp-cuda.csv
run fp-cpu 70 train fingerprint --corpus corpus --cache /tmp/cache --state /tmp/fpu --steps 400 --val-every 200 --checkpoint-every 100 --out /tmp/fpu/out
cp /tmp/fpu/log.csv $OUT/fp-cpu.csv
run sep-cuda 100 train separator --corpus corpus --cache /tmp/cache --state /tmp/spc --steps 300 --val-every 100 --checkpoint-every 100 --out /tmp/spc/out --device cuda
cp /tmp/spc/log.csv $OUT/sep-cuda.csv
run sep-cpu 50 train separator --corpus corpus --cache /tmp/cache --state /tmp/spu --steps 300 --val-every 100 --checkpoint-every 100 --out /tmp/spu/out
cp /tmp/spu/log.csv $OUT/sep-cpu.csv
tail -n 3 $OUT/*.out | cut -c1-300
cat $OUT/summary.txt
