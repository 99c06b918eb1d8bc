"""What an execution level is: the one module that defines level semantics (the contract).

Levels are integers ``0 .. N-1``; level 0 is full quality and every higher level
spends less. Each adaptive node maps a level to its own knob setting through a
*profile*: a list whose entry ``i`` is the setting for level ``i``. A profile
shorter than the number of levels repeats its last entry, so a node that has only
two settings still follows a four-level manager.
"""

from typing import Sequence, TypeVar

DEFAULT_LEVEL_NAMES = ('full', 'balanced', 'saver', 'critical')
MAX_LEVELS = 255  # ExecutionLevel.level is a uint8

T = TypeVar('T')


def validate_level_names(names: Sequence[str]) -> None:
    """Raise ValueError unless ``names`` can name the levels 0..N-1."""
    if not 1 <= len(names) <= MAX_LEVELS:
        raise ValueError(f'need 1..{MAX_LEVELS} level names, got {len(names)}')
    if any(not n.strip() for n in names):
        raise ValueError('level names must not be empty')
    if len(set(names)) != len(names):
        raise ValueError(f'level names must be unique, got {list(names)}')


def clamp_level(level: int, num_levels: int) -> int:
    """Clamp ``level`` into ``0 .. num_levels-1``."""
    return max(0, min(int(level), num_levels - 1))


def profile_entry(profile: Sequence[T], level: int) -> T:
    """Knob setting for ``level``: the profile's entry, or its last one if shorter."""
    if not profile:
        raise ValueError('a level profile needs at least one entry')
    return profile[clamp_level(level, len(profile))]
