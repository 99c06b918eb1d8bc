"""Which execution level a node applies: override, the manager's, or its fallback.

Pure logic (no rclpy) shared by every adaptive node through
``adaptive_perception.ros.level_following``. The manager's level counts only while
it is fresh: a manager that falls silent for ``timeout_s`` (heartbeats included)
is treated as gone and the node takes its own ``fallback_level``.
"""

from dataclasses import dataclass

FOLLOW_MANAGER = -1


@dataclass(frozen=True)
class AppliedLevel:
    """The level a node applies and why."""

    level: int
    source: str  # 'override' | 'manager' | 'fallback'
    reason: str


class LevelFollower:
    """Decides the applied level from the override, the manager and a timeout."""

    def __init__(self, fallback_level: int, timeout_s: float, override: int = FOLLOW_MANAGER):
        self.fallback_level = fallback_level
        self.timeout_s = timeout_s
        self.override = override
        self._manager_level = None
        self._manager_time_s = None

    def on_manager_level(self, level: int, now_s: float) -> None:
        """Take a level received from the manager at local time ``now_s``."""
        self._manager_level = int(level)
        self._manager_time_s = now_s

    def manager_age_s(self, now_s: float) -> float:
        """Seconds since the manager was last heard; inf if never."""
        return float('inf') if self._manager_time_s is None else now_s - self._manager_time_s

    def decide(self, now_s: float) -> AppliedLevel:
        """Return the level to apply now."""
        if self.override != FOLLOW_MANAGER:
            return AppliedLevel(self.override, 'override', 'level_override parameter')
        age = self.manager_age_s(now_s)
        if age <= self.timeout_s:
            return AppliedLevel(self._manager_level, 'manager', 'following budget_manager')
        if self._manager_time_s is None:
            why = 'no execution level received yet'
        else:
            why = f'budget_manager silent for {age:.1f} s (> {self.timeout_s:g} s)'
        return AppliedLevel(self.fallback_level, 'fallback', why)
