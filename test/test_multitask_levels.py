"""level_policies entries: '<policy>' or '<policy>:<task>+<task>...' (pure, no ROS)."""

import pytest

from adaptive_perception.multitask.levels import (
    DEFAULT_LEVEL_POLICIES,
    LevelChoice,
    parse_level_choice,
)


def test_a_policy_alone_allows_every_task():
    assert parse_level_choice('high') == LevelChoice('high', None)
    assert parse_level_choice(' static ') == LevelChoice('static')
    assert str(parse_level_choice('low')) == 'low'


def test_tasks_are_kept_in_model_order_and_print_back():
    choice = parse_level_choice('low:depth+segmentation')
    assert choice == LevelChoice('low', ('segmentation', 'depth'))
    assert choice == parse_level_choice('low: segmentation + depth ')
    assert str(choice) == 'low:segmentation+depth'
    assert parse_level_choice(str(choice)) == choice


def test_the_default_profile_parses():
    choices = [parse_level_choice(entry) for entry in DEFAULT_LEVEL_POLICIES]
    assert [c.policy for c in choices] == ['static', 'low_agnostic', 'low_agnostic', 'low']
    assert choices[-1].tasks == ('segmentation', 'depth')


@pytest.mark.parametrize('text, reason', [
    ('', 'expected'),
    (':depth', 'expected'),
    ('low high', 'expected'),
    ('low:', 'empty task name'),
    ('low:depth+', 'empty task name'),
    ('low:colour', "unknown task 'colour'; tasks are segmentation, depth, normals, saliency"),
    ('low:depth+Depth', "unknown task 'Depth'"),
    ('low:depth+depth', 'named twice'),
    ('static/int4', "precision 'int4'"),
    ('static/', "precision ''"),
    ('/int8', 'expected'),
    ('low:depth/int8/int8', "precision 'int8/int8'"),
])
def test_bad_entries_say_why(text, reason):
    with pytest.raises(ValueError, match=reason) as error:
        parse_level_choice(text)
    assert repr(text) in str(error.value)


@pytest.mark.parametrize('text, policy, tasks, precision', [
    ('low_agnostic/int8', 'low_agnostic', None, 'int8'),
    ('static/fp32', 'static', None, 'fp32'),
    ('low:depth+segmentation/int8', 'low', ('segmentation', 'depth'), 'int8'),
])
def test_precision_entries_parse_and_print_back(text, policy, tasks, precision):
    choice = parse_level_choice(text)
    assert (choice.policy, choice.tasks, choice.precision) == (policy, tasks, precision)
    assert parse_level_choice(str(choice)) == choice
    assert str(parse_level_choice('low_agnostic')) == 'low_agnostic'  # FP32 unless named
