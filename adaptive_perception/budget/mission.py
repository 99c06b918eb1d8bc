"""The mission objective: last a required duration at the best quality the battery allows.

Pure Python (no rclpy); ``budget.policy.BudgetPolicy`` owns one ``Mission`` and
adds its demand to the other rules (the hotter, emptier or more frugal demand
wins, so thresholds and heat still override a plan).

Three parts:

* ``DrainEstimator`` learns how fast the battery drains (fraction of a full battery
  per mission second) at each level. What it observes: BatteryState current x
  voltage over the battery's energy (when the message carries current and
  capacity), else the slope of the charge fraction at the current level. What it
  assumes for levels it has not observed: a prior power per level in watts (the
  nodes' measured CPU time through a device model, or a configured list), scaled
  by one factor ``alpha`` (fraction/s per W) fitted to what it observed. Jumps,
  readings that go backwards and stalled gauges are reported, never learned.
* ``plan_mission`` picks the costliest level whose predicted energy lasts the rest
  of the mission with the reserve, and, where the next costlier level cannot last
  alone, how long that one can run first ("level 1 until T+0:40, then 2"). The
  prediction includes the battery thresholds that will force cheaper levels later.
* ``Mission`` re-plans as the estimate improves, with a hysteresis band so that
  noise does not make it oscillate: a cheaper level is taken at once, a costlier
  one only if it still fits with every drain estimate ``margin`` (a share, 0.1 =
  10%) higher and 2% more battery left (reading noise), and after ``dwell_s``
  mission seconds at the current one.

Mission time is wall time times ``time_scale`` (1 on a real robot; a simulated
battery in accelerated time gives its own scale).
"""

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

OK, WARN, ERROR = 0, 1, 2
_MIN_SLOPE_SPAN_S = 120.0  # mission seconds of readings at one level before a slope counts
_MIN_SLOPE_READINGS = 4
_MAX_SLOPE_ERROR = 0.1  # relative standard error of a usable slope
_BACKWARDS_TOLERANCE = 0.005  # a fraction may rise this much (gauge noise) while draining
# A plan that ends this close under the reserve still counts as meeting it: re-planning
# in steps lands a switch up to one step late, which must not read as a failed mission.
_FEASIBLE_TOLERANCE = 0.002
_EDGE = 0.01  # a predicted shortfall up to this is within the noise: WARN, not ERROR
_STALL_FRACTION = 0.02  # a reading frozen while the estimate says this much was drawn
# Going costlier also needs this much battery above the reserve: the reading itself is
# noisy (gauges jitter by a percent or two), which the margin on the drains does not cover.
_READING_BAND = 0.02


def _line(ts: np.ndarray, fs: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line through (ts, fs): slope, intercept and the slope's standard error.

    numpy's polyfit gives the same three figures as scipy.stats.linregress (residual
    variance over n - 2 degrees of freedom); importing scipy.stats would add about
    0.6 s to every start of the budget manager. Needs at least three points.
    """
    (slope, intercept), cov = np.polyfit(ts, fs, 1, cov=True)
    return float(slope), float(intercept), math.sqrt(max(float(cov[0, 0]), 0.0))


@dataclass(frozen=True)
class MissionConfig:
    """The mission's settings (the ``mission_*`` parameters of budget_manager)."""

    duration_s: float = 0.0  # 0 = no mission
    reserve: float = 0.05
    margin: float = 0.1
    dwell_s: float = 300.0
    time_scale: float = 1.0
    estimate_tau_s: float = 300.0
    slope_window_s: float = 900.0
    jump_fraction: float = 0.05
    prior_power_w: tuple = ()

    def validate(self, num_levels: int) -> None:
        """Raise ValueError naming the first value that makes no sense."""
        checks = [('mission_duration_s', self.duration_s, self.duration_s >= 0, '>= 0'),
                  ('mission_reserve', self.reserve, 0 <= self.reserve < 1, 'within [0, 1)'),
                  ('mission_margin', self.margin, 0 <= self.margin < 1, 'within [0, 1)'),
                  ('mission_dwell_s', self.dwell_s, self.dwell_s >= 0, '>= 0'),
                  ('mission_time_scale', self.time_scale, self.time_scale > 0, '> 0'),
                  ('mission_estimate_tau_s', self.estimate_tau_s, self.estimate_tau_s > 0,
                   '> 0'),
                  ('mission_slope_window_s', self.slope_window_s,
                   self.slope_window_s > _MIN_SLOPE_SPAN_S, f'> {_MIN_SLOPE_SPAN_S:g}'),
                  ('mission_jump_fraction', self.jump_fraction, 0 < self.jump_fraction <= 1,
                   'within (0, 1]')]
        for name, value, ok, requirement in checks:
            if not (math.isfinite(value) and ok):
                raise ValueError(f'{name} must be {requirement}, got {value}')
        if self.prior_power_w and len(self.prior_power_w) != num_levels:
            raise ValueError(f'mission_prior_power_w needs one value per level ({num_levels}) '
                             f'or none, got {len(self.prior_power_w)}')
        if any(not (math.isfinite(w) and w > 0) for w in self.prior_power_w):
            raise ValueError('mission_prior_power_w entries must be finite and > 0 W')


def clock_text(mission_s: float) -> str:
    """Mission time as T+H:MM."""
    minutes = int(max(mission_s, 0.0) // 60)
    return f'T+{minutes // 60}:{minutes % 60:02d}'


# -- estimation -----------------------------------------------------------------
class DrainEstimator:
    """Drain rate per level (fraction of a full battery per mission second).

    ``rates()`` returns None for a level it knows nothing about yet. ``problem``
    holds the last reading problem (severity, text, mission time) for diagnostics.
    """

    def __init__(self, num_levels: int, tau_s: float = 300.0, window_s: float = 900.0,
                 jump_fraction: float = 0.05):
        self.num_levels = num_levels
        self.tau_s = tau_s
        self.window_s = window_s
        self.jump_fraction = jump_fraction
        self.alpha = None  # fraction/s per W of prior power
        self.observed = {}  # level -> EMA of observed drain (fraction/s)
        self.prior_w = {}  # level -> W (measured node power + idle, or configured)
        self.source = 'none'  # what the last observation came from
        self.problem = None
        self._level = None
        self._window = deque()  # (t, fraction) at the current level
        self._last = None  # (t, fraction) of the last accepted reading
        self._updated_t = None
        self._fitted = None  # the window's least-squares fraction now (a noisy gauge smoothed)
        self._still = None  # (t, fraction) since the reading last moved
        self._reckoned = None  # while the reading is frozen: fraction by the drain estimate
        self._reckoned_t = None

    def set_prior(self, watts_by_level: dict) -> None:
        """Take prior powers (W) for some levels; non-finite or <= 0 entries are ignored."""
        self.prior_w.update({int(k): float(v) for k, v in watts_by_level.items()
                             if math.isfinite(v) and v > 0})

    def reading(self, t: float, fraction: float, level: int, charging: bool = False,
                current_a: float = math.nan, voltage_v: float = math.nan,
                capacity_ah: float = math.nan) -> None:
        """Take one battery reading at mission time ``t`` while ``level`` was applied."""
        if level != self._level or charging:
            self._window.clear()
            self._level = None if charging else level
        if charging:
            self._last = self._still = self._reckoned = self._fitted = None
            return
        if self._last is not None:
            dt, df = t - self._last[0], fraction - self._last[1]
            if dt < 0:
                self._note(WARN, 'battery reading older than the last one: ignored', t)
                return
            if abs(df) > self.jump_fraction:
                self._note(WARN, f'battery jumped from {self._last[1]:.3f} to {fraction:.3f}: '
                                 'estimate window restarted', t)
                self._window.clear()
            elif df > _BACKWARDS_TOLERANCE:
                self._note(WARN, f'battery rose from {self._last[1]:.3f} to {fraction:.3f} '
                                 'while discharging: reading ignored', t)
                return
        self._last = (t, fraction)
        self._track_stall(t, fraction, level)
        self._window.append((t, fraction))
        while self._window and t - self._window[0][0] > self.window_s:
            self._window.popleft()
        self._fitted = self._fit_now(t, fraction)
        energy_wh = capacity_ah * voltage_v
        if math.isfinite(current_a) and math.isfinite(energy_wh) and energy_wh > 0 \
                and current_a < 0:
            self._observe(level, -current_a * voltage_v / (energy_wh * 3600.0), t, 'current')
            return
        rate = self._slope_rate()
        if rate is None or self._reckoned is not None:
            return
        expected = self.rates()[level]
        span = self._window[-1][0] - self._window[0][0]
        if rate <= 0 or (expected is not None and rate < 0.1 * expected):
            if expected is not None and expected * span >= 0.02:
                self._note(WARN, f'battery reading stalled at {fraction:.3f} for {span:.0f} s '
                                 'while draining: estimate kept', t)
            return
        self._observe(level, rate, t, 'slope')

    def _track_stall(self, t, fraction, level):
        """Dead-reckon the fraction while the reading stays frozen although it should move."""
        if self._still is None or fraction != self._still[1]:
            self._still, self._reckoned = (t, fraction), None
            return
        rate = self.rates()[level]
        if rate is None:
            return
        if self._reckoned is None:
            if rate * (t - self._still[0]) >= _STALL_FRACTION:
                self._reckoned = self._still[1] - rate * (t - self._still[0])
                self._reckoned_t = t
                self._note(WARN, f'battery reading stalled at {fraction:.3f} for '
                                 f'{t - self._still[0]:.0f} s while draining: planning with '
                                 f'{self._reckoned:.3f} from the drain estimate', t)
            return
        self._reckoned -= rate * (t - self._reckoned_t)
        self._reckoned_t = t

    def _fit_now(self, t, fraction):
        if len(self._window) < _MIN_SLOPE_READINGS:
            return fraction
        ts = np.fromiter((p[0] for p in self._window), float)
        fs = np.fromiter((p[1] for p in self._window), float)
        if np.ptp(ts) == 0 or np.ptp(fs) == 0:
            return fraction
        slope, intercept, _ = _line(ts - ts[0], fs)
        return float(intercept + slope * (t - ts[0]))

    def plan_fraction(self, fraction: float) -> float:
        """Return the fraction to plan with: the reading smoothed, or less while frozen.

        The least-squares line through the window at the current level damps a noisy
        gauge (a percent of jitter would otherwise flip the plan near its edges).
        """
        if self._fitted is not None and math.isfinite(self._fitted):
            fraction = min(max(self._fitted, 0.0), 1.0)
        return fraction if self._reckoned is None else min(fraction, max(self._reckoned, 0.0))

    def _slope_rate(self):
        """Least-squares drain over the window; None until the fit is precise enough.

        Noisy or coarse gauges need a long window: a slope whose standard error is
        above ``_MAX_SLOPE_ERROR`` of itself is not used (it would make the plan swing).
        """
        if len(self._window) < _MIN_SLOPE_READINGS:
            return None
        ts = np.fromiter((p[0] for p in self._window), float)
        fs = np.fromiter((p[1] for p in self._window), float)
        if ts[-1] - ts[0] < _MIN_SLOPE_SPAN_S:
            return None
        if np.ptp(fs) == 0:
            return 0.0
        slope, _, stderr = _line(ts - ts[0], fs)
        if slope < 0 and stderr > _MAX_SLOPE_ERROR * -slope:
            return None
        return float(-slope)

    def _observe(self, level, rate, t, source):
        weight = 1.0 if self._updated_t is None else \
            1.0 - math.exp(-max(t - self._updated_t, 0.0) / self.tau_s)
        self._updated_t = t
        self.source = source
        old = self.observed.get(level)
        self.observed[level] = rate if old is None else old + weight * (rate - old)
        prior = self.prior_w.get(level)
        if prior:
            sample = rate / prior
            self.alpha = sample if self.alpha is None else self.alpha + weight * (
                sample - self.alpha)

    def seed_alpha(self, energy_wh: float) -> None:
        """Before any observation: watts to fraction/s through a known battery energy."""
        if self.alpha is None and math.isfinite(energy_wh) and energy_wh > 0:
            self.alpha = 1.0 / (energy_wh * 3600.0)

    def rates(self) -> list:
        """Predicted drain per level (fraction/s); None where nothing is known."""
        out = []
        for level in range(self.num_levels):
            prior = self.prior_w.get(level)
            if self.alpha is not None and prior:
                out.append(self.alpha * prior)
            else:
                out.append(self.observed.get(level))
        known = [i for i, r in enumerate(out) if r is not None]
        for level in range(self.num_levels):  # unknown: as the nearest known level
            if out[level] is None and known:
                out[level] = out[min(known, key=lambda k: (abs(k - level), -k))]
        return out

    def _note(self, severity, text, t):
        self.problem = (severity, text, t)


# -- planning -------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What the planner decided for the rest of the mission."""

    level: int  # level to run now
    feasible: bool
    end_fraction: float  # predicted battery at the end of the mission
    then_level: int | None = None  # level after switch_s (None: ``level`` to the end)
    switch_s: float = math.inf  # mission seconds from now until ``then_level``


def forced_level(fraction: float, battery_thresholds) -> int:
    """Return the level the battery thresholds force at ``fraction`` (no hysteresis)."""
    return sum(fraction < t for t in battery_thresholds)


def predict_end(rates, fraction, segments, battery_thresholds=()) -> float:
    """Battery fraction after running ``segments`` [(level, seconds), ...] from ``fraction``.

    Along the way a level is never costlier than the thresholds force; the
    result may be negative (the battery would have run out).
    """
    crossings = sorted((t for t in battery_thresholds), reverse=True)
    for planned, seconds in segments:
        left = seconds
        while left > 0:
            level = max(planned, forced_level(fraction, crossings))
            rate = rates[min(level, len(rates) - 1)]
            below = [c for c in crossings if c < fraction]
            if rate <= 0:
                break
            if below and level < len(rates) - 1:
                to_next = (fraction - below[0]) / rate
                if to_next < left:
                    fraction, left = below[0] - 1e-12, left - to_next
                    continue
            fraction -= rate * left
            left = 0.0
    return fraction


def plan_mission(rates, fraction: float, remaining_s: float, reserve: float,
                 battery_thresholds=()) -> Plan:
    """Costliest level (and for how long) that ends the mission with ``reserve`` left."""
    n = len(rates)
    if remaining_s <= 0:
        return Plan(0, True, fraction)
    floor = min(forced_level(fraction, battery_thresholds), n - 1)  # thresholds hold now
    ends = [predict_end(rates, fraction, [(lv, remaining_s)], battery_thresholds)
            for lv in range(n)]
    sustainable = [lv for lv in range(floor, n) if ends[lv] >= reserve - _FEASIBLE_TOLERANCE]
    if not sustainable:
        return Plan(n - 1, False, ends[n - 1])
    best = sustainable[0]
    if best == floor:
        return Plan(best, True, ends[best])
    costlier = best - 1
    lo, hi = 0.0, remaining_s  # longest first stretch at ``costlier`` that still fits
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        end = predict_end(rates, fraction, [(costlier, mid), (best, remaining_s - mid)],
                          battery_thresholds)
        lo, hi = (mid, hi) if end >= reserve else (lo, mid)
    if lo <= 0.0:
        return Plan(best, True, ends[best])
    end = predict_end(rates, fraction, [(costlier, lo), (best, remaining_s - lo)],
                      battery_thresholds)
    return Plan(costlier, True, end, best, lo)


# -- the mission ------------------------------------------------------------------
@dataclass(frozen=True)
class MissionState:
    """The mission's demand and its explanation, for the decision and diagnostics."""

    active: bool
    level: int | None
    severity: int
    text: str
    elapsed_s: float = math.nan
    remaining_s: float = math.nan
    end_fraction: float = math.nan
    rates: tuple = ()


class Mission:
    """Mission clock, drain estimate and the plan with its hysteresis."""

    def __init__(self, num_levels: int, config: MissionConfig = MissionConfig()):
        self.num_levels = num_levels
        self.config = config
        self.estimator = DrainEstimator(num_levels, config.estimate_tau_s,
                                        config.slope_window_s, config.jump_fraction)
        self.estimator.set_prior(dict(enumerate(config.prior_power_w)))
        self._start_wall = None  # monotonic time at mission start
        self._start_epoch = None
        self._level = None
        self._level_since = None
        self._ended = None  # (fraction at the end) once the mission is over

    def reconfigure(self, config: MissionConfig, num_levels: int, now_s: float) -> None:
        """Take new settings; a changed duration (re)starts the mission clock at ``now_s``."""
        restart = config.duration_s != self.config.duration_s
        if num_levels != self.num_levels:
            self.__init__(num_levels, config)
        self.config = config
        est = self.estimator
        est.tau_s, est.window_s = config.estimate_tau_s, config.slope_window_s
        est.jump_fraction = config.jump_fraction
        if config.prior_power_w:
            est.set_prior(dict(enumerate(config.prior_power_w)))
        if restart:
            self.start(now_s) if config.duration_s > 0 else self.stop()

    def start(self, now_s: float, epoch_s: float | None = None) -> None:
        """Start (or restart) the mission clock now."""
        self._start_wall = now_s
        self._start_epoch = time.time() if epoch_s is None else epoch_s
        self._level = self._level_since = None
        self._ended = None

    def stop(self) -> None:
        """End the mission without waiting for its duration."""
        self._start_wall = None
        self._ended = None

    def mission_time(self, now_s: float) -> float:
        """Mission seconds since the start (NaN when none was started)."""
        if self._start_wall is None:
            return math.nan
        return (now_s - self._start_wall) * self.config.time_scale

    def active(self, now_s: float) -> bool:
        """Tell whether a mission was started and its duration has not passed."""
        return self.config.duration_s > 0 and self._start_wall is not None and \
            self.mission_time(now_s) < self.config.duration_s

    def reading(self, now_s: float, fraction: float, level: int, charging: bool,
                current_a=math.nan, voltage_v=math.nan, capacity_ah=math.nan) -> None:
        """Feed a checked battery reading taken while ``level`` was applied."""
        t = now_s * self.config.time_scale  # the estimate outlives missions: its own axis
        self.estimator.seed_alpha(capacity_ah * voltage_v)
        self.estimator.reading(t, fraction, level, charging, current_a, voltage_v, capacity_ah)
        if self._start_wall is not None and not self.active(now_s) and self._ended is None \
                and self.config.duration_s > 0:
            self._ended = fraction

    def wall_text(self, mission_s: float) -> str:
        """Mission time as T+H:MM and, in real time, the wall clock (HH:MM UTC)."""
        text = clock_text(mission_s)
        if self._start_epoch is not None and self.config.time_scale == 1.0:
            text += time.strftime(' (%H:%M UTC)', time.gmtime(self._start_epoch + mission_s))
        return text

    def decide(self, now_s: float, fraction: float, charging: bool,
               battery_thresholds=()) -> MissionState:
        """Return the mission's level demand now (None: no demand) and its explanation."""
        cfg = self.config
        if cfg.duration_s <= 0 or self._start_wall is None:
            return MissionState(False, None, OK, 'no mission')
        t = self.mission_time(now_s)
        if t >= cfg.duration_s:
            end = '' if self._ended is None else f' with {100 * self._ended:.0f}% battery'
            return MissionState(False, None, OK,
                                f'mission of {clock_text(cfg.duration_s)} ended{end}', t, 0.0)
        remaining = cfg.duration_s - t
        rates = self.estimator.rates()
        common = dict(elapsed_s=t, remaining_s=remaining, rates=tuple(
            math.nan if r is None else r for r in rates))
        if charging:
            return MissionState(True, 0, OK, 'mission: charging, no limit', **common)
        if not math.isfinite(fraction) or any(r is None for r in rates):
            self._level = None
            return MissionState(True, None, WARN, 'mission: no drain estimate yet '
                                f'({clock_text(remaining)} left)', **common)
        fraction = self.estimator.plan_fraction(fraction)
        plan = plan_mission(rates, fraction, remaining, cfg.reserve, battery_thresholds)
        level = plan.level
        if self._level is not None and level < self._level:
            # costlier only if it fits with drains ``margin`` higher, after ``dwell_s`` here
            strict = plan_mission([r * (1.0 + cfg.margin) for r in rates], fraction,
                                  remaining, cfg.reserve + _READING_BAND, battery_thresholds)
            held = t - self._level_since
            level = self._level if held < cfg.dwell_s else min(self._level,
                                                                max(level, strict.level))
        if level != self._level:
            self._level, self._level_since = level, t
        common['end_fraction'] = plan.end_fraction
        if not plan.feasible:
            short = self._shortfall(rates, fraction, remaining, cfg.reserve)
            # a shortfall within the estimate's noise is a warning, not a failed mission
            severity = ERROR if plan.end_fraction < cfg.reserve - _EDGE else WARN
            return MissionState(True, level, severity, (
                f'mission cannot be met: even level {self.num_levels - 1} ends at '
                f'{100 * plan.end_fraction:.0f}% battery (reserve {100 * cfg.reserve:.0f}%), '
                f'{short}; running the cheapest level'), **common)
        if level == plan.level and plan.then_level is not None:
            text = (f'level {level} until {self.wall_text(t + plan.switch_s)}, then '
                    f'{plan.then_level}')
        else:
            text = f'level {level}'
        text += (f'; predicted end of mission ({self.wall_text(cfg.duration_s)}) at '
                 f'{100 * plan.end_fraction:.0f}% battery')
        return MissionState(True, level, OK, 'mission: ' + text, **common)

    def _shortfall(self, rates, fraction, remaining, reserve) -> str:
        rate = rates[-1]
        lasts = (fraction - reserve) / rate if rate > 0 else math.inf
        return f'it lasts {clock_text(lasts)} of the {clock_text(remaining)} left'


def diagnostic_values(state: MissionState, estimator: DrainEstimator) -> dict:
    """Key/values for ``/diagnostics``: the plan, the drain per level and what it rests on."""
    values = {'mission_active': state.active, 'mission_plan': state.text,
              'mission_elapsed_s': state.elapsed_s, 'mission_remaining_s': state.remaining_s,
              'mission_end_fraction': state.end_fraction,
              'mission_estimate_source': estimator.source}
    for level, rate in enumerate(state.rates):
        values[f'mission_drain_per_h_level_{level}'] = rate * 3600.0
    for level, watts in sorted(estimator.prior_w.items()):
        values[f'mission_prior_w_level_{level}'] = watts
    if estimator.problem is not None:
        values['mission_input_problem'] = estimator.problem[1]
    return values
