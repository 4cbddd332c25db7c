#!/bin/bash
# Pack what device-check.sh needs into .cudacheck/ (ignored by git; name it in the device tool's
# carry): the stripped CUDA binary, its FFmpeg libraries (heavy optional codec libraries replaced
# by symbol stubs, see closure.py) and a ~12 MB slice of the training corpus.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-target-cuda/release/aniprint}
CORPUS=${CORPUS:-../data/corpus}
D=.cudacheck
grep -qx "/$D/" .git/info/exclude || echo "/$D/" >> .git/info/exclude
rm -rf "$D" /tmp/aniprint-stubs && mkdir -p "$D"
python3 scripts/cuda/closure.py "$B" /tmp/aniprint-stubs/stubs
strip -o /tmp/aniprint-cuda "$B" && xz -T2 -6 -c /tmp/aniprint-cuda > "$D/aniprint.xz"
tar cf - -C /tmp/aniprint-stubs stubs | xz -T2 -6 > "$D/libs.txz"
cp scripts/cuda/device-check.sh "$D/run.sh"
python3 - "$CORPUS" "$D/corpus" <<'PY'
import csv, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(os.path.join(src, "manifest.csv"))))
take = {"oxygen-sounds": 50, "lmms-common": 216, "asterisk-core-sounds-en-wav": 60, "fillets-ng-data": 80}
by = {}
for r in rows:
    by.setdefault(r["package"], []).append(r)
keep = []
for p, n in take.items():
    rs = by.get(p, [])
    if p == "fillets-ng-data":  # held out: its smallest files
        rs = sorted(rs, key=lambda r: os.path.getsize(os.path.join(src, r["path"])))
    keep += rs[:n]
for r in keep:
    for f in (r["path"], r["licence_file"]):
        os.makedirs(os.path.dirname(os.path.join(dst, f)), exist_ok=True)
        shutil.copy(os.path.join(src, f), os.path.join(dst, f))
w = csv.DictWriter(open(os.path.join(dst, "manifest.csv"), "w", newline=""), fieldnames=rows[0].keys())
w.writeheader(); w.writerows(keep)
PY
du -sh "$D"
