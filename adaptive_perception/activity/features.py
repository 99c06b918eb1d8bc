"""Features of one window: the same 24 numbers at any sampling rate.

Per axis: mean, standard deviation, and the spectrum's magnitude at 0.5, 1.0,
... 3.0 Hz over a 2 s window (thesis sec. 5.3.2). These are exactly the bins an
FFT of a 2 s window has up to 3 Hz, but computed as a direct Fourier sum at those
fixed frequencies with the samples' real timestamps: the result has the same size
and meaning at 100 Hz or 6.25 Hz, and a window with a gap or jittered stamps is
still measured correctly instead of being treated as evenly spaced. For evenly
spaced samples filling the window it equals ``numpy.fft.rfft`` (tested).

Magnitudes are amplitude-normalised (a sinusoid of amplitude a at a bin frequency
gives a), so they do not grow with the number of samples.
"""

import numpy as np

WINDOW_S = 2.0
HOP_S = 1.0
FREQUENCIES_HZ = np.arange(1, 7) / WINDOW_S   # 0.5 .. 3.0 Hz
AXES = ('x', 'y', 'z')
FEATURE_NAMES = tuple(
    [f'mean_{a}' for a in AXES] + [f'std_{a}' for a in AXES]
    + [f'fft{f:g}hz_{a}' for a in AXES for f in FREQUENCIES_HZ])
FEATURE_SIZE = len(FEATURE_NAMES)
MIN_SAMPLES = 8   # below this a 2 s window says too little (6.25 Hz gives 12-13)


def window_features(t: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Return the feature vector (FEATURE_SIZE,) of samples at times ``t`` (s), ``acc`` (n, 3).

    Raises ValueError for fewer than MIN_SAMPLES samples.
    """
    t = np.asarray(t, dtype=np.float64)
    acc = np.asarray(acc, dtype=np.float64)
    if len(t) < MIN_SAMPLES:
        raise ValueError(f'a window needs at least {MIN_SAMPLES} samples, got {len(t)}')
    mean = acc.mean(axis=0)
    std = acc.std(axis=0)
    centred = acc - mean
    # (n, F) complex exponentials at the fixed frequencies, phase from the real stamps
    basis = np.exp(-2j * np.pi * np.outer(t - t[0], FREQUENCIES_HZ))
    spectrum = 2.0 * np.abs(basis.T @ centred) / len(t)       # (F, 3)
    return np.concatenate([mean, std, spectrum.T.ravel()]).astype(np.float32)


def window_ends(start_s: float, end_s: float) -> np.ndarray:
    """End times of the full windows in ``[start_s, end_s)``, one every HOP_S."""
    first = start_s + WINDOW_S
    count = int(np.floor((end_s - first) / HOP_S + 1e-9)) + 1
    return first + HOP_S * np.arange(max(count, 0))


def stream_features(t: np.ndarray, acc: np.ndarray, ends: np.ndarray) -> tuple:
    """Features of the window ``(end - WINDOW_S, end]`` for each end time.

    Returns ``(features (k, FEATURE_SIZE), kept)``: ``kept`` marks the windows that
    had enough samples; the others are left out of ``features``.
    """
    rows, kept = [], np.zeros(len(ends), dtype=bool)
    lo = np.searchsorted(t, np.asarray(ends) - WINDOW_S, side='right')
    hi = np.searchsorted(t, ends, side='right')
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if b - a >= MIN_SAMPLES:
            rows.append(window_features(t[a:b], acc[a:b]))
            kept[i] = True
    features = np.stack(rows) if rows else np.zeros((0, FEATURE_SIZE), np.float32)
    return features, kept
