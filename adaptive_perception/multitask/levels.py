"""What one execution level means to the multi-task node: a policy and the tasks it may run.

An entry of ``level_policies`` is ``<policy>`` (every task allowed) or
``<policy>:<task>+<task>...`` (only those tasks are computed at that level),
optionally ending in ``/int8`` or ``/fp32`` (the precision of the graphs it runs;
FP32 when omitted): ``low_agnostic/int8``, ``low:segmentation+depth/int8``.
Parsing is pure; whether the loaded model has the policy and the precision is the
node's check.
"""

from dataclasses import dataclass

from adaptive_perception.multitask.scenes import TASKS

# level -> entry: the full model; the learned low budget that measures best (the shipped
# model's card: `high` takes longer than static, task-aware `low` saves less and loses
# more than `low_agnostic`), at levels 1 and 2; the frugal one for two tasks only.
DEFAULT_LEVEL_POLICIES = ('static', 'low_agnostic', 'low_agnostic', 'low:segmentation+depth')


PRECISIONS = ('fp32', 'int8')


@dataclass(frozen=True)
class LevelChoice:
    """A resident policy, the tasks allowed (``None`` = all) and the graphs' precision."""

    policy: str
    tasks: tuple | None = None
    precision: str = 'fp32'

    def __str__(self) -> str:
        text = self.policy if self.tasks is None else f'{self.policy}:{"+".join(self.tasks)}'
        return text if self.precision == 'fp32' else f'{text}/{self.precision}'


def parse_level_choice(text: str) -> LevelChoice:
    """Parse ``'<policy>[:<task>+<task>...][/<precision>]'``; ValueError says what is wrong.

    Tasks are kept in ``TASKS`` order, so equal sets give equal choices.
    """
    text = str(text).strip()
    body, slash, precision = text.partition('/')
    precision = precision.strip() if slash else 'fp32'
    if precision not in PRECISIONS:
        raise ValueError(f'level policy entry {text!r}: precision {precision!r}; expected '
                         f'one of {", ".join(PRECISIONS)} after the slash')
    choice = _parse_body(text, body.strip())
    return LevelChoice(choice.policy, choice.tasks, precision)


def _parse_body(text: str, body: str) -> LevelChoice:
    policy, colon, task_text = body.partition(':')
    policy = policy.strip()
    expected = f"expected '<policy>' or '<policy>:<task>+<task>...' with tasks from {TASKS}"
    if not policy or any(c.isspace() for c in policy):
        raise ValueError(f'level policy entry {text!r}: {expected}')
    if not colon:
        return LevelChoice(policy)
    names = [name.strip() for name in task_text.split('+')]
    if not all(names):
        raise ValueError(f'level policy entry {text!r}: empty task name; {expected}')
    unknown = [name for name in names if name not in TASKS]
    if unknown:
        raise ValueError(f'level policy entry {text!r}: unknown task {unknown[0]!r}; '
                         f'tasks are {", ".join(TASKS)}')
    if len(set(names)) != len(names):
        raise ValueError(f'level policy entry {text!r}: a task is named twice')
    return LevelChoice(policy, tuple(task for task in TASKS if task in names))
