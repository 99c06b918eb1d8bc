"""Features of one window: the same numbers at any sampling rate and in any device orientation.

Why a gravity-aligned frame: a device's axes say nothing about the body unless
everyone wears it the same way. Real phones sit in pockets, on belts and in hands
with gravity along any axis; features taken per device axis learn the posture
from where gravity happens to point (a model trained upright scored 35% on a phone
that had gravity on x). So each window is described relative to the gravity
estimated in that window (its mean acceleration):

* ``gravity_norm``: length of the mean acceleration (about 9.81 m/s^2; about 1 for
  data in g, which is how units are checked).
* ``std_vertical`` / ``std_horizontal``: spread of the motion along gravity and in
  the plane across it (root of the summed variance of the two horizontal axes).
* ``fft<f>hz_vertical`` / ``fft<f>hz_horizontal``: spectrum magnitude at 0.5, 1.0 ...
  3.0 Hz of the vertical motion and of the horizontal motion (root of the summed
  power of any two orthogonal horizontal axes: independent of the rotation about
  gravity), as a direct Fourier sum at those fixed frequencies with the samples'
  real timestamps, so a jittered or gappy window is measured correctly and the
  size is the same at 100 Hz or 6.25 Hz. For evenly spaced samples filling the
  window it equals ``numpy.fft.rfft`` (tested). Amplitude-normalised: a sinusoid
  of amplitude a at a bin frequency gives a.
* ``upright_cos`` / ``upright_known``: posture. Sitting, standing and lying differ
  mostly by the trunk's tilt, which one window cannot see without knowing which
  way is "up" for this wearer and device. ``UprightReference`` learns it from the
  gravity direction while the wearer moves (walking is upright) and keeps it over
  the stream; ``upright_cos`` is the cosine between the window's gravity and that
  reference. Until the stream has shown steps there is no reference:
  ``upright_known`` is 0 and ``upright_cos`` 0, so sitting, standing and lying are
  told apart only by their motion until the wearer first walks. Assuming the
  documented axis convention instead made the model depend on which axis carries
  gravity (measured: 6 points worse in random orientations than upright).

Every feature is invariant to any rotation of the device that stays fixed over
the stream (tested over the 24 axis-aligned rotations).
"""

import numpy as np

WINDOW_S = 2.0
HOP_S = 1.0
FREQUENCIES_HZ = np.arange(1, 7) / WINDOW_S   # 0.5 .. 3.0 Hz
FEATURE_NAMES = tuple(
    ['gravity_norm', 'upright_cos', 'upright_known', 'std_vertical', 'std_horizontal']
    + [f'fft{f:g}hz_vertical' for f in FREQUENCIES_HZ]
    + [f'fft{f:g}hz_horizontal' for f in FREQUENCIES_HZ])
FEATURE_SIZE = len(FEATURE_NAMES)
MIN_SAMPLES = 8   # below this a 2 s window says too little (6.25 Hz gives 12-13)
GAIT_AMPLITUDE = 1.0  # m/s^2 of vertical motion at 1-3 Hz (steps) that counts as moving
REFERENCE_GAIN = 0.1  # weight of a moving window's gravity direction in the reference


def _parts(t: np.ndarray, acc: np.ndarray) -> tuple:
    t = np.asarray(t, dtype=np.float64)
    acc = np.asarray(acc, dtype=np.float64)
    if len(t) < MIN_SAMPLES:
        raise ValueError(f'a window needs at least {MIN_SAMPLES} samples, got {len(t)}')
    mean = acc.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    up = mean / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    centred = acc - mean
    vertical = centred @ up
    horizontal = centred - np.outer(vertical, up)
    # (n, F) complex exponentials at the fixed frequencies, phase from the real stamps
    basis = np.exp(-2j * np.pi * np.outer(t - t[0], FREQUENCIES_HZ))
    scale = 2.0 / len(t)
    spectrum_v = scale * np.abs(basis.T @ vertical)
    spectrum_h = scale * np.sqrt((np.abs(basis.T @ horizontal) ** 2).sum(axis=1))
    std_v = float(vertical.std())
    std_h = float(np.sqrt(horizontal.var(axis=0).sum()))
    return norm, up, std_v, std_h, spectrum_v, spectrum_h


def window_features(t: np.ndarray, acc: np.ndarray, reference=None) -> np.ndarray:
    """Return the feature vector (FEATURE_SIZE,) of samples at times ``t`` (s), ``acc`` (n, 3).

    ``reference``: the wearer's upright direction in the device frame (unit
    vector), or None where unknown (flagged, and no tilt is given).
    Raises ValueError for fewer than MIN_SAMPLES samples.
    """
    return _features(_parts(t, acc), reference)


def _features(parts: tuple, reference) -> np.ndarray:
    norm, up, std_v, std_h, spectrum_v, spectrum_h = parts
    known = reference is not None
    cosine = float(up @ np.asarray(reference, dtype=np.float64)) if known else 0.0
    return np.concatenate([[norm, cosine, float(known), std_v, std_h],
                           spectrum_v, spectrum_h]).astype(np.float32)


class UprightReference:
    """Features of consecutive windows of one stream, learning which way is up.

    Call it with each window in stream order. A window with a step rhythm
    (vertical motion above GAIT_AMPLITUDE at 1-3 Hz: walking, stairs; sensor noise
    spreads over all frequencies and stays below it) moves the reference towards
    its gravity direction; other windows are measured against it without changing it.
    """

    def __init__(self):
        self.vector = None

    def reset(self) -> None:
        """Forget the reference (the device may have been moved)."""
        self.vector = None

    def __call__(self, t: np.ndarray, acc: np.ndarray) -> np.ndarray:
        """Return the window's features, then learn from it if it has steps."""
        parts = _parts(t, acc)
        features = _features(parts, self.vector)
        _, up, _, _, spectrum_v, _ = parts
        if spectrum_v[1:].max() > GAIT_AMPLITUDE:   # steps, not sensor noise or a fidget
            blended = up if self.vector is None else (
                (1 - REFERENCE_GAIN) * self.vector + REFERENCE_GAIN * up)
            self.vector = blended / np.linalg.norm(blended)
        return features


def window_ends(start_s: float, end_s: float) -> np.ndarray:
    """End times of the full windows in ``[start_s, end_s)``, one every HOP_S."""
    first = start_s + WINDOW_S
    count = int(np.floor((end_s - first) / HOP_S + 1e-9)) + 1
    return first + HOP_S * np.arange(max(count, 0))


def stream_features(t: np.ndarray, acc: np.ndarray, ends: np.ndarray) -> tuple:
    """Features of the window ``(end - WINDOW_S, end]`` for each end time, in stream order.

    Returns ``(features (k, FEATURE_SIZE), kept)``: ``kept`` marks the windows that
    had enough samples; the others are left out of ``features``. One
    ``UprightReference`` runs over the windows, as in the recognizer.
    """
    reference = UprightReference()
    rows, kept = [], np.zeros(len(ends), dtype=bool)
    lo = np.searchsorted(t, np.asarray(ends) - WINDOW_S, side='right')
    hi = np.searchsorted(t, ends, side='right')
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        if b - a >= MIN_SAMPLES:
            rows.append(reference(t[a:b], acc[a:b]))
            kept[i] = True
    features = np.stack(rows) if rows else np.zeros((0, FEATURE_SIZE), np.float32)
    return features, kept
