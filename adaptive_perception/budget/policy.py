"""The budget policy: battery, temperature and latency in, one execution level out.

Pure Python (no rclpy) so every rule is unit- and property-tested on its own;
``budget.manager_node`` only feeds it messages and publishes its decisions.

Rules, in the order they combine:

* battery: below ``battery_thresholds[i]`` (descending fractions) means at least
  level ``i+1``; the battery must rise ``battery_hysteresis`` above a threshold
  before it stops counting. Charging lifts the battery limit entirely.
* temperature: at or above ``temperature_thresholds_c[i]`` (ascending) means at
  least level ``i+1``, released ``temperature_hysteresis_c`` below it. The hotter
  of battery and thermal demands wins, so heat overrides a full battery.
* stale inputs: a required input silent for ``stale_timeout_s`` means at least
  ``stale_level``.
* latency: if a node's p95 frame latency stays above its target for
  ``latency_window_s``, spend one level less; once every node has stayed under
  ``latency_recover_ratio`` x target for a window, give that level back.
* moving to a cheaper level is immediate; returning to a costlier one waits until
  the current level has been held for ``dwell_s``.
* mission: with ``mission_duration_s`` > 0, the costliest level whose predicted
  energy lasts the rest of the mission with ``mission_reserve`` left
  (``budget.mission``); it is one more demand, so thresholds and heat still win.
* ``override_level`` >= 0 replaces all of the above at once.
"""

import math
import time
from dataclasses import dataclass, field, replace

from adaptive_perception.budget.mission import Mission, MissionConfig, MissionState
from adaptive_perception.interfaces import TEMPERATURE_TOPIC, resolved
from adaptive_perception.levels import DEFAULT_LEVEL_NAMES, validate_level_names

BATTERY = 'battery'


@dataclass(frozen=True)
class PolicyConfig:
    """Every threshold of the policy; ``validate`` says why a set is inconsistent."""

    level_names: tuple = DEFAULT_LEVEL_NAMES
    battery_thresholds: tuple = (0.6, 0.35, 0.15)
    battery_hysteresis: float = 0.03
    temperature_thresholds_c: tuple = (65.0, 75.0, 85.0)
    temperature_hysteresis_c: float = 3.0
    charging_lifts_battery_limit: bool = True
    dwell_s: float = 10.0
    latency_window_s: float = 5.0
    latency_recover_ratio: float = 0.7
    stale_timeout_s: float = 5.0
    stale_level: int = 2
    require_battery: bool = True
    require_temperature: bool = True
    override_level: int = -1
    mission_duration_s: float = 0.0
    mission_reserve: float = 0.05
    mission_margin: float = 0.1
    mission_dwell_s: float = 300.0
    mission_time_scale: float = 1.0
    mission_estimate_tau_s: float = 300.0
    mission_prior_power_w: tuple = ()

    @property
    def mission(self) -> MissionConfig:
        """The mission settings as ``budget.mission`` takes them."""
        return MissionConfig(duration_s=self.mission_duration_s, reserve=self.mission_reserve,
                             margin=self.mission_margin, dwell_s=self.mission_dwell_s,
                             time_scale=self.mission_time_scale,
                             estimate_tau_s=self.mission_estimate_tau_s,
                             prior_power_w=tuple(self.mission_prior_power_w))

    @property
    def num_levels(self) -> int:
        """Number of execution levels."""
        return len(self.level_names)

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistency."""
        validate_level_names(self.level_names)
        n = self.num_levels
        _check_thresholds('battery_thresholds', self.battery_thresholds, n, descending=True,
                          gap=self.battery_hysteresis)
        if any(not 0.0 < t < 1.0 for t in self.battery_thresholds):
            raise ValueError('battery_thresholds must lie strictly between 0 and 1')
        _check_thresholds('temperature_thresholds_c', self.temperature_thresholds_c, n,
                          descending=False, gap=self.temperature_hysteresis_c)
        for name in ('battery_hysteresis', 'temperature_hysteresis_c', 'dwell_s'):
            if not getattr(self, name) >= 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        for name in ('latency_window_s', 'stale_timeout_s'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if not 0 < self.latency_recover_ratio <= 1:
            raise ValueError('latency_recover_ratio must be in (0, 1], '
                             f'got {self.latency_recover_ratio}')
        if not 0 <= self.stale_level < n:
            raise ValueError(f'stale_level {self.stale_level} is not a level 0..{n - 1}')
        if not -1 <= self.override_level < n:
            raise ValueError(f'override_level {self.override_level} must be -1 (follow the '
                             f'policy) or a level 0..{n - 1}')
        self.mission.validate(n)


def _check_thresholds(name, values, num_levels, descending, gap):
    if len(values) != num_levels - 1:
        raise ValueError(f'{name} needs {num_levels - 1} values (one per level above 0), '
                         f'got {len(values)}')
    if any(not math.isfinite(v) for v in values):
        raise ValueError(f'{name} must be finite numbers')
    pairs = list(zip(values, values[1:], strict=False))
    steps = [a - b if descending else b - a for a, b in pairs]
    if any(s <= gap for s in steps):
        order = 'descending' if descending else 'ascending'
        raise ValueError(f'{name} {list(values)} must be strictly {order}, each step larger '
                         f'than the hysteresis ({gap:g})')


@dataclass(frozen=True)
class Decision:
    """The level the policy decided and what led to it."""

    level: int
    level_name: str
    num_levels: int
    reason: str
    changed: bool
    battery_fraction: float
    temperature_c: float
    charging: bool
    demands: dict = field(default_factory=dict)  # rule -> level it asks for
    mission: MissionState | None = None


class _Hysteresis:
    """Level demanded by one signal against a threshold ladder, with a release band."""

    def __init__(self):
        self.level = 0

    def update(self, crossed, released) -> int:
        """``crossed``/``released``: number of thresholds crossed without/with the band."""
        self.level = crossed if crossed > self.level else min(self.level, released)
        return self.level


@dataclass
class _LatencyTrack:
    p95_ms: float
    target_ms: float
    time_s: float
    over_since: float | None = None
    under_since: float | None = None


# The documented temperature topic, as the manager subscribes to it in the root namespace.
DEFAULT_TEMPERATURE_SOURCES = (resolved(TEMPERATURE_TOPIC),)


class BudgetPolicy:
    """Stateful policy: feed it readings, call ``decide`` to get the level."""

    def __init__(self, config: PolicyConfig, now_s: float,
                 temperature_sources=DEFAULT_TEMPERATURE_SOURCES):
        config.validate()
        self.config = config
        self._start_s = now_s
        self._temperature_sources = tuple(temperature_sources)
        self._battery = None  # (fraction, charging)
        self._temperatures = {}  # source -> celsius
        self._heard = {}  # source -> local time of the last accepted reading
        self._battery_band = _Hysteresis()
        self._thermal_band = _Hysteresis()
        self._latency = {}  # node -> _LatencyTrack
        self._latency_offset = 0
        self._latency_changed_s = now_s
        self._level = 0
        self._level_since_s = now_s
        self.mission = Mission(config.num_levels, config.mission)
        if config.mission_duration_s > 0:
            self.mission.start(now_s)

    def reconfigure(self, config: PolicyConfig, now_s: float | None = None) -> None:
        """Swap thresholds at run time, keeping the state; raise ValueError if invalid.

        A changed ``mission_duration_s`` (re)starts the mission at ``now_s``.
        """
        config.validate()
        self.config = config
        self.mission.reconfigure(config.mission, config.num_levels,
                                 time.monotonic() if now_s is None else now_s)
        self._level = min(self._level, config.num_levels - 1)
        self._latency_offset = min(self._latency_offset, config.num_levels - 1)

    # -- inputs ---------------------------------------------------------------
    def battery(self, fraction: float, charging: bool, now_s: float,
                current_a: float = math.nan, voltage_v: float = math.nan,
                capacity_ah: float = math.nan) -> None:
        """Take a checked battery reading (fraction 0..1).

        Current (A, negative while discharging), voltage and capacity (Ah) are
        optional (NaN: unknown); the mission's drain estimate uses them when present.
        """
        self._battery = (fraction, charging)
        self._heard[BATTERY] = now_s
        self.mission.reading(now_s, fraction, self._level, charging, current_a, voltage_v,
                             capacity_ah)

    def level_power(self, watts_by_level: dict) -> None:
        """Measured device power (W) per level, the prior of the mission's estimate."""
        self.mission.estimator.set_prior(watts_by_level)

    def start_mission(self, now_s: float) -> None:
        """(Re)start the mission clock; the duration is ``mission_duration_s``."""
        self.mission.start(now_s)

    def temperature(self, source: str, celsius: float, now_s: float) -> None:
        """Take a checked temperature reading from one source (topic)."""
        self._temperatures[source] = celsius
        self._heard[source] = now_s

    def latency(self, node: str, p95_ms: float, target_ms: float, now_s: float) -> None:
        """Take a node's recent p95 frame latency and its target (target <= 0: none)."""
        track = self._latency.setdefault(node, _LatencyTrack(p95_ms, target_ms, now_s))
        track.p95_ms, track.target_ms, track.time_s = p95_ms, target_ms, now_s

    def forget(self, node: str) -> None:
        """Drop a node that is gone: its last latency no longer counts."""
        self._latency.pop(node, None)

    # -- decision -------------------------------------------------------------
    def decide(self, now_s: float) -> Decision:
        """Combine the rules into the level for ``now_s``."""
        cfg = self.config
        top = cfg.num_levels - 1
        battery_fraction, charging = self._battery if self._fresh(BATTERY, now_s) else (
            math.nan, False)
        fresh_temps = {s: t for s, t in self._temperatures.items() if self._fresh(s, now_s)}
        hottest = max(fresh_temps.values()) if fresh_temps else math.nan

        demands, reasons = {}, {}
        mission = self.mission.decide(now_s, battery_fraction, charging,
                                      () if charging else cfg.battery_thresholds)
        if mission.level is not None:
            demands['mission'], reasons['mission'] = mission.level, mission.text
        if charging and cfg.charging_lifts_battery_limit:
            self._battery_band.level = 0
            demands[BATTERY], reasons[BATTERY] = 0, 'charging lifts the battery limit'
        elif math.isfinite(battery_fraction):
            crossed = sum(battery_fraction < t for t in cfg.battery_thresholds)
            released = sum(battery_fraction < t + cfg.battery_hysteresis
                           for t in cfg.battery_thresholds)
            demands[BATTERY] = self._battery_band.update(crossed, released)
            ladder = self._ladder_text(battery_fraction, BATTERY)
            reasons[BATTERY] = f'battery {battery_fraction:.3f}{ladder}'
        if math.isfinite(hottest):
            crossed = sum(hottest >= t for t in cfg.temperature_thresholds_c)
            released = sum(hottest > t - cfg.temperature_hysteresis_c
                           for t in cfg.temperature_thresholds_c)
            demands['temperature'] = self._thermal_band.update(crossed, released)
            source = max(fresh_temps, key=fresh_temps.get)
            reasons['temperature'] = (f'temperature {hottest:.1f} C on {source}'
                                      f'{self._ladder_text(hottest, "temperature")}')
        stale = self._stale_inputs(now_s)
        if stale:
            demands['stale'] = cfg.stale_level
            reasons['stale'] = (f'stale input: {", ".join(stale)} silent '
                                f'> {cfg.stale_timeout_s:g} s')

        base_rule = max(demands, key=demands.get, default=None)
        base = demands.get(base_rule, 0)
        offset_reason = self._update_latency(now_s, top)
        target = min(top, base + self._latency_offset)
        if cfg.override_level >= 0:
            target, reason = cfg.override_level, 'manual override (override_level parameter)'
        else:
            if base_rule is None:
                reason = 'no input yet'
            elif base > 0:
                reason = reasons[base_rule]
            else:
                reason = 'within budget: ' + '; '.join(reasons.values())
            if self._latency_offset:
                reason += f'; {offset_reason}'
            if target < self._level and now_s - self._level_since_s < cfg.dwell_s:
                held = now_s - self._level_since_s
                reason = (f'holding {cfg.level_names[self._level]} for dwell '
                          f'({held:.1f} of {cfg.dwell_s:g} s) before level {target}: {reason}')
                target = self._level
        changed = target != self._level
        if changed:
            self._level, self._level_since_s = target, now_s
        demands['latency_offset'] = self._latency_offset
        return Decision(self._level, cfg.level_names[self._level], cfg.num_levels, reason,
                        changed, battery_fraction, hottest, charging, demands, mission)

    def _ladder_text(self, value, which):
        """Say which threshold holds the current demand, and whether only the band does."""
        cfg = self.config
        if which == BATTERY:
            level, threshold = self._battery_band.level, cfg.battery_thresholds
            release, crossed = cfg.battery_hysteresis, 'below'
        else:
            level, threshold = self._thermal_band.level, cfg.temperature_thresholds_c
            release, crossed = -cfg.temperature_hysteresis_c, 'at or above'
        if level == 0:
            return ''
        t = threshold[level - 1]
        if (value < t) == (which == BATTERY) or value == t:
            return f' {crossed} {t:g}'
        return f' inside the hysteresis band of {t:g} (released at {t + release:g})'

    def _fresh(self, source, now_s):
        heard = self._heard.get(source)
        return heard is not None and now_s - heard <= self.config.stale_timeout_s

    def _stale_inputs(self, now_s):
        required = ([BATTERY] if self.config.require_battery else []) + (
            list(self._temperature_sources) if self.config.require_temperature else [])
        return [s for s in required if not self._fresh(s, now_s)
                and now_s - self._start_s > self.config.stale_timeout_s]

    def _update_latency(self, now_s, top):
        """Step the latency offset up or down; return a text for the reason."""
        cfg = self.config
        live = {n: t for n, t in self._latency.items()
                if t.target_ms > 0 and now_s - t.time_s <= cfg.stale_timeout_s}
        worst = None
        for name, t in live.items():
            over = t.p95_ms > t.target_ms
            under = t.p95_ms < cfg.latency_recover_ratio * t.target_ms
            t.over_since = (t.over_since if t.over_since is not None else now_s) if over else None
            t.under_since = ((t.under_since if t.under_since is not None else now_s)
                             if under else None)
            if over and (worst is None or t.p95_ms / t.target_ms > worst[1].p95_ms /
                         worst[1].target_ms):
                worst = (name, t)
        since_change = now_s - self._latency_changed_s
        if worst and since_change >= cfg.latency_window_s and \
                now_s - worst[1].over_since >= cfg.latency_window_s and self._latency_offset < top:
            self._latency_offset += 1
            self._latency_changed_s = now_s
        elif self._latency_offset and since_change >= cfg.latency_window_s and all(
                t.under_since is not None and now_s - t.under_since >= cfg.latency_window_s
                for t in live.values()):
            self._latency_offset -= 1
            self._latency_changed_s = now_s
        if worst:
            name, t = worst
            return (f'latency: {name} p95 {t.p95_ms:.0f} ms > target {t.target_ms:.0f} ms '
                    f'(+{self._latency_offset} level)')
        return f'latency objective holds +{self._latency_offset} level'


def config_with(config: PolicyConfig, **changes) -> PolicyConfig:
    """Return a copy of ``config`` with ``changes``; sequences become tuples."""
    return replace(config, **{k: tuple(v) if isinstance(v, list) else v
                              for k, v in changes.items()})
