"""The accelerometer: its 16 configurations, what each costs, and what each outputs.

A configuration is a sampling frequency (output data rate, ODR) and an averaging
window (samples averaged per output). The model follows the Bosch BMI160 data sheet
(BST-BMI160-DS000, rev. 0.8), the sensor the thesis measured:

* Low-power mode (sec. 2.4.1.2, "undersampling"): per output sample the sensor
  wakes into normal mode, takes ``averaging_window`` samples at its internal
  1600 Hz and averages them, then suspends; ``skipped = 1600/ODR - averaged``.
  So the fraction of time awake is ``duty = window * ODR / 1600``. Where the
  averaged samples do not fit in one period (``duty >= 1``) low-power mode is not
  possible and the sensor runs in normal mode (always on).
* Supply current (sec. 1, electrical specification): accelerometer in normal
  mode 180 uA, whole device in suspend 3 uA. The model charges
  ``I = I_suspend + duty * (I_normal - I_suspend)``; wake-up transients are not
  in the data sheet and are left out.
* Normal mode (a configuration whose window does not fit in one period, e.g.
  F100_A128): the output filter spans one output period and the noise follows
  the data sheet's density, 180 ug/sqrt(Hz), over the ODR/2 bandwidth.
* Low-power mode: averaging ``A`` samples divides independent sample noise by
  ``sqrt(A)``. The rms noise of one un-averaged low-power sample is a model
  parameter (``SensorModel.single_sample_noise``), not a data-sheet figure: the
  data sheet gives the noise density for normal mode only. Its default (2.0 m/s^2,
  about 200 mg) is an assumption: the thesis measured that the window matters
  (its front prefers A16 to A8 at 50 and 12.5 Hz) but gives no noise figure.
  models/activity/README.md shows how the exploration and the SPOT benchmark
  change with it; ``--noise`` changes it everywhere.

``emulate`` turns a raw signal sampled at ``INTERNAL_HZ`` into the output of a
configuration: average the raw samples of the filter window before each output
instant, keep one output per ``1/ODR`` (decimation, without anti-alias filter in
low-power mode, as the sensor does), add the noise.
"""

import math
import re
from dataclasses import dataclass

import numpy as np

INTERNAL_HZ = 1600.0          # BMI160 accelerometer internal sampling rate
NORMAL_CURRENT_UA = 180.0     # accelerometer, normal mode
SUSPEND_CURRENT_UA = 3.0      # device in suspend
NOISE_DENSITY = 180e-6 * 9.80665   # normal mode, (m/s^2)/sqrt(Hz)
VALID_WINDOWS = (1, 2, 4, 8, 16, 32, 64, 128)  # 2**acc_bwp
GRAVITY = 9.80665

_NAME = re.compile(r'^F(?P<hz>\d+(?:\.\d+)?)_A(?P<window>\d+)$')


@dataclass(frozen=True, order=True)
class SensorConfig:
    """One sampling frequency and averaging window, named like the thesis (F50_A16)."""

    sampling_hz: float
    averaging_window: int

    def __post_init__(self):
        if not 0.0 < self.sampling_hz <= INTERNAL_HZ:
            raise ValueError(f'sampling_hz must be in (0, {INTERNAL_HZ:g}], '
                             f'got {self.sampling_hz}')
        if self.averaging_window not in VALID_WINDOWS:
            raise ValueError(f'averaging_window must be one of {VALID_WINDOWS}, '
                             f'got {self.averaging_window}')

    @property
    def name(self) -> str:
        """Thesis-style name, e.g. ``F12.5_A8``."""
        return f'F{self.sampling_hz:g}_A{self.averaging_window}'

    @property
    def duty(self) -> float:
        """Fraction of time the sensor is awake (1.0 = normal mode)."""
        return min(1.0, self.averaging_window * self.sampling_hz / INTERNAL_HZ)

    @property
    def normal_mode(self) -> bool:
        """True where the averaged samples do not fit in one period: no duty cycling."""
        return self.averaging_window * self.sampling_hz >= INTERNAL_HZ

    @property
    def filter_window(self) -> int:
        """Raw samples averaged into one output: A, or one period in normal mode."""
        return min(self.averaging_window, max(1, round(INTERNAL_HZ / self.sampling_hz)))

    @property
    def current_ua(self) -> float:
        """Modelled supply current of the accelerometer at this configuration."""
        return SUSPEND_CURRENT_UA + self.duty * (NORMAL_CURRENT_UA - SUSPEND_CURRENT_UA)

    def __str__(self) -> str:
        return self.name


def parse_config(name: str) -> SensorConfig:
    """``'F12.5_A8'`` -> SensorConfig(12.5, 8); ValueError names what is wrong."""
    match = _NAME.match(str(name).strip())
    if not match:
        raise ValueError(f"sensor state {name!r} is not of the form 'F<hz>_A<window>', "
                         f"e.g. 'F50_A16'")
    return SensorConfig(float(match['hz']), int(match['window']))


# Table 5.1 of the thesis, in its order.
CONFIGS = tuple(parse_config(n) for n in (
    'F100_A128', 'F50_A128', 'F25_A128', 'F12.5_A128', 'F6.25_A128',
    'F25_A32', 'F12.5_A32', 'F6.25_A32',
    'F50_A16', 'F25_A16', 'F12.5_A16', 'F6.25_A16',
    'F50_A8', 'F25_A8', 'F12.5_A8', 'F6.25_A8'))
# The Pareto states the thesis found, costliest first (SPOT's default states).
THESIS_PARETO = tuple(parse_config(n) for n in ('F100_A128', 'F50_A16', 'F12.5_A16',
                                                'F12.5_A8'))


@dataclass(frozen=True)
class SensorModel:
    """Noise of the emulated sensor, in m/s^2 rms, and real-sensor effects.

    ``range_ms2``: full-scale range; outputs are clipped to +-range (0 = no
    clipping; the BMI160 offers +-2, 4, 8 and 16 g). ``stamp_jitter_s``: rms error
    of the output timestamps (a driver stamping on arrival), kept within 0.4 of a
    period so stamps still increase.
    """

    single_sample_noise: float = 2.0   # one un-averaged sample (model parameter, see above)
    range_ms2: float = 0.0
    stamp_jitter_s: float = 0.0

    def noise_rms(self, config: SensorConfig) -> float:
        """Return the rms noise of one output sample at ``config``."""
        if config.normal_mode:
            return NOISE_DENSITY * math.sqrt(config.sampling_hz / 2)
        return self.single_sample_noise / math.sqrt(config.averaging_window)


DEFAULT_MODEL = SensorModel()


def output_indices(config: SensorConfig, start_s: float, end_s: float) -> np.ndarray:
    """Integer output sample numbers n with ``start_s <= n / ODR < end_s``.

    Output instants sit on one global grid ``n / ODR``, so emulating a stream in
    chunks gives the same samples as emulating it whole.
    """
    first = math.ceil(start_s * config.sampling_hz - 1e-9)
    last = math.ceil(end_s * config.sampling_hz - 1e-9)
    return np.arange(first, last, dtype=np.int64)


def emulate(raw_t0: float, raw: np.ndarray, config: SensorConfig, start_s: float,
            end_s: float, rng: np.random.Generator,
            model: SensorModel = DEFAULT_MODEL) -> tuple:
    """Return what the sensor outputs in ``[start_s, end_s)`` at ``config``, from ``raw``.

    ``raw`` (N, 3) is the true acceleration sampled at ``INTERNAL_HZ`` from time
    ``raw_t0`` on; it must cover ``averaging_window`` samples before ``start_s``
    (``raw_span`` says which). Returns ``(t, acc)``: output times (s) and readings.
    """
    raw = np.asarray(raw, dtype=np.float64)
    window = config.filter_window
    n = output_indices(config, start_s, end_s)
    # raw index of each output instant: the last sample the average includes
    last = np.rint(n / config.sampling_hz * INTERNAL_HZ - raw_t0 * INTERNAL_HZ).astype(np.int64)
    if len(n) and (last[0] - window + 1 < 0 or last[-1] >= len(raw)):
        raise ValueError(f'raw signal [{raw_t0:.4f} s, +{len(raw)} samples] does not cover '
                         f'{config.name} outputs in [{start_s:.4f}, {end_s:.4f}) s '
                         f'(use raw_span)')
    cumulative = np.concatenate([np.zeros((1, 3)), np.cumsum(raw, axis=0)])
    averaged = (cumulative[last + 1] - cumulative[last + 1 - window]) / window
    noisy = averaged + rng.normal(0.0, model.noise_rms(config), averaged.shape)
    t = n / config.sampling_hz
    if model.range_ms2:
        noisy = np.clip(noisy, -model.range_ms2, model.range_ms2)
    if model.stamp_jitter_s:
        limit = 0.4 / config.sampling_hz
        t = t + np.clip(rng.normal(0.0, model.stamp_jitter_s, len(t)), -limit, limit)
    return t, noisy


def raw_span(config: SensorConfig, start_s: float, end_s: float) -> tuple:
    """(t0, count): the raw samples ``emulate`` needs for outputs in ``[start_s, end_s)``."""
    first = math.floor(start_s * INTERNAL_HZ) - config.averaging_window - 1
    last = math.ceil(end_s * INTERNAL_HZ) + 1
    return first / INTERNAL_HZ, last - first
