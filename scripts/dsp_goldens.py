#!/usr/bin/env python3
"""Write fixtures/goldens/dsp.json: librosa reference values for the Rust `dsp` module tests.

Usage (from the repository root):

    pip install librosa   # tested with librosa 0.11.0, numpy 2.4, scipy 1.17
    python3 scripts/dsp_goldens.py

The test signals are 16-bit PCM (stored as integers, read back as pcm / 32768), so the Rust
side sees bit-identical float32 input. The output is deterministic: fixed frequencies and a
seeded numpy Generator for the noise.

Stored per signal:
  - `stft`: librosa.stft (n_fft 1024, hop 256, center=True, pad_mode="constant") magnitude of
    every bin for a few frames (first, edges, middle, last), plus real/imaginary parts of two
    frames to pin the sign convention;
  - `logmel`: the full librosa.feature.melspectrogram (sr 8000, n_fft 1024, hop 256, 256 mels,
    300..4000 Hz, power 2) -> librosa.power_to_db(ref=1.0, amin=1e-10, top_db=None), mel-major.
Stored once (`istft`): librosa.istft of the first signal's STFT times a fixed mask, at the
start, middle and end of the output.
Stored per filterbank config: librosa.filters.mel rows in sparse form (first nonzero bin and
the weights up to the last nonzero bin).
"""

import json
import pathlib

import librosa
import numpy as np
import scipy

SR = 8000
N_FFT = 1024
HOP = 256
N_MELS = 256
FMIN = 300.0
FMAX = 4000.0
SCALE = 32768

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "goldens" / "dsp.json"


def to_pcm(x):
    return np.clip(np.round(x * SCALE), -32768, 32767).astype(np.int16)


def signal_mix():
    """1.5 s: two steady tones, a linear chirp 200 -> 3800 Hz, and white noise at -34 dBFS."""
    n = SR * 3 // 2
    t = np.arange(n) / SR
    rng = np.random.default_rng(20240601)
    x = (
        0.25 * np.sin(2 * np.pi * 440.0 * t)
        + 0.15 * np.sin(2 * np.pi * 1234.5 * t + 0.3)
        + 0.2 * scipy.signal.chirp(t, f0=200.0, t1=t[-1], f1=3800.0, method="linear")
        + 0.02 * rng.standard_normal(n)
    )
    return to_pcm(x)


def signal_segment():
    """1 s (one fingerprint segment): 0.3 s of digital silence, then a decaying 660 Hz tone with
    its 3rd harmonic over white noise at -40 dBFS. The silent frames must give exactly -100 dB."""
    n = SR
    t = np.arange(n) / SR
    rng = np.random.default_rng(7)
    onset = 2400
    tail = t[onset:] - t[onset]
    env = np.exp(-3.0 * tail)
    y = np.zeros(n)
    y[onset:] = (
        0.4 * env * np.sin(2 * np.pi * 660.0 * tail)
        + 0.1 * env * np.sin(2 * np.pi * 1980.0 * tail)
        + 0.01 * rng.standard_normal(n - onset)
    )
    return to_pcm(y)


def r(values, digits):
    return [round(float(v), digits) for v in np.ravel(values)]


def sig(values, digits=8):
    return [float(f"{float(v):.{digits}g}") for v in np.ravel(values)]


def goldens_for(name, pcm):
    y = pcm.astype(np.float32) / np.float32(SCALE)
    spec = librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True, pad_mode="constant")
    n_frames = spec.shape[1]
    frames = sorted({0, 1, 2, n_frames // 2, n_frames - 2, n_frames - 1})
    complex_frames = [1, n_frames // 2]
    mel = librosa.feature.melspectrogram(
        y=y,
        sr=SR,
        n_fft=N_FFT,
        hop_length=HOP,
        n_mels=N_MELS,
        fmin=FMIN,
        fmax=FMAX,
        power=2.0,
        center=True,
        pad_mode="constant",
    )
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    assert db.shape == (N_MELS, n_frames), db.shape
    return {
        "name": name,
        "sample_rate": SR,
        "scale": SCALE,
        "pcm": [int(v) for v in pcm],
        "stft": {
            "n_fft": N_FFT,
            "hop": HOP,
            "n_frames": n_frames,
            "frames": frames,
            "magnitude": [sig(np.abs(spec[:, f])) for f in frames],
            "complex_frames": complex_frames,
            "re": [sig(spec[:, f].real) for f in complex_frames],
            "im": [sig(spec[:, f].imag) for f in complex_frames],
        },
        "logmel": {
            "n_mels": N_MELS,
            "n_frames": n_frames,
            # mel-major, 5 decimals (dB)
            "db": r(db, 5),
        },
    }


def istft_golden(name, pcm):
    """librosa.istft of a masked (so no longer self-consistent) STFT, cut to the input length.
    mask[bin, frame] = 0.5 + 0.5 * cos(0.05 * bin + 0.3 * frame), as float32."""
    y = pcm.astype(np.float32) / np.float32(SCALE)
    spec = librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True, pad_mode="constant")
    k = np.arange(spec.shape[0])[:, None]
    t = np.arange(spec.shape[1])[None, :]
    mask = (0.5 + 0.5 * np.cos(0.05 * k + 0.3 * t)).astype(np.float32)
    masked = spec * mask
    assert masked.dtype == np.complex64
    out = librosa.istft(masked, hop_length=HOP, n_fft=N_FFT, center=True, length=len(y))
    spans = [(0, 1024), (len(y) // 2 - 256, len(y) // 2 + 256), (len(y) - 1024, len(y))]
    return {
        "signal": name,
        "n_fft": N_FFT,
        "hop": HOP,
        "length": len(y),
        "spans": [{"start": a, "samples": sig(out[a:b])} for a, b in spans],
    }


def filterbank(sr, n_fft, n_mels, fmin, fmax):
    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert fb.dtype == np.float32
    rows = []
    for row in fb:
        nz = np.nonzero(row)[0]
        if len(nz) == 0:
            rows.append({"start": 0, "weights": []})
        else:
            rows.append({"start": int(nz[0]), "weights": sig(row[nz[0] : nz[-1] + 1], 9)})
    return {
        "sample_rate": sr,
        "n_fft": n_fft,
        "n_mels": n_mels,
        "fmin": fmin,
        "fmax": fmax,
        "rows": rows,
    }


def main():
    doc = {
        "generator": "scripts/dsp_goldens.py",
        "librosa": librosa.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "signals": [
            goldens_for("mix_1500ms", signal_mix()),
            goldens_for("segment_1s", signal_segment()),
        ],
        "istft": istft_golden("mix_1500ms", signal_mix()),
        "filterbanks": [
            filterbank(SR, N_FFT, N_MELS, FMIN, FMAX),
            filterbank(22050, 2048, 128, 0.0, 11025.0),
            filterbank(16000, 512, 40, 20.0, 7600.0),
        ],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
