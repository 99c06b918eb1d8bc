"""Design-space exploration: the Pareto front and a smoke run of all 16 configurations."""

import json

from hypothesis import given
from hypothesis import strategies as st

from adaptive_perception.activity.explore import pareto_front, run_explore
from adaptive_perception.activity.sensor import CONFIGS, THESIS_PARETO


def dominated(p, by) -> bool:
    """``by`` costs no more, is no less accurate, and is strictly better in one."""
    return by[1] <= p[1] and by[2] >= p[2] and (by[1] < p[1] or by[2] > p[2])


def test_front_is_non_dominated_points_costliest_first():
    points = [('cheap', 10.0, 0.80), ('mid', 25.0, 0.90), ('worse_mid', 30.0, 0.85),
              ('top', 180.0, 0.97), ('waste', 180.0, 0.70)]
    assert pareto_front(points) == [('top', 180.0, 0.97), ('mid', 25.0, 0.90),
                                    ('cheap', 10.0, 0.80)]


def test_equal_current_keeps_only_the_most_accurate():
    points = [('F6.25_A128', 91.5, 0.91), ('F25_A32', 91.5, 0.95), ('F50_A16', 91.5, 0.93),
              ('F12.5_A8', 14.0625, 0.85)]
    assert pareto_front(points) == [('F25_A32', 91.5, 0.95), ('F12.5_A8', 14.0625, 0.85)]


def test_exact_duplicates_both_stay():
    points = [('b', 91.5, 0.9), ('a', 91.5, 0.9), ('c', 91.5, 0.8)]
    assert pareto_front(points) == [('a', 91.5, 0.9), ('b', 91.5, 0.9)]


def test_one_point_dominating_all_others_is_the_whole_front():
    points = [('costly', 180.0, 0.90), ('mid', 47.25, 0.92), ('best', 8.53, 0.95),
              ('tie_current', 8.53, 0.60)]
    assert pareto_front(points) == [('best', 8.53, 0.95)]


def test_empty_input_has_empty_front():
    assert pareto_front([]) == []


# Few distinct currents and accuracies, so ties in either are frequent.
POINTS = st.lists(st.tuples(st.sampled_from([8.53, 14.06, 25.12, 47.25, 91.5, 180.0]),
                            st.integers(0, 8).map(lambda a: a / 8)), max_size=20).map(
    lambda cs: [(f'p{i}', c, a) for i, (c, a) in enumerate(cs)])


@given(POINTS)
def test_front_property(points):
    front = pareto_front(points)
    assert all(p in points for p in front)
    assert all(not dominated(f, by=p) for f in front for p in points)
    assert all(any(dominated(p, by=f) for f in front) for p in points if p not in front)
    currents = [f[1] for f in front]
    assert currents == sorted(currents, reverse=True)


def test_smoke_run_writes_json_and_png(tmp_path, capsys):
    result = run_explore(tmp_path, smoke=True)
    saved = json.loads((tmp_path / 'dse.json').read_text())
    assert saved == result
    rows = saved['configurations']
    assert [r['name'] for r in rows] == [c.name for c in CONFIGS]
    assert all(0.0 <= r['accuracy'] <= 1.0 for r in rows)
    expected = pareto_front((r['name'], r['current_ua'], r['accuracy']) for r in rows)
    assert saved['front'] == [p[0] for p in expected] and saved['front']
    assert [r['name'] for r in rows if r['on_front']] == [
        c.name for c in CONFIGS if c.name in saved['front']]
    thesis = [c.name for c in THESIS_PARETO]
    assert saved['thesis_front'] == thesis
    assert sorted(saved['thesis_on_front'] + saved['thesis_missed']) == sorted(thesis)
    assert set(saved['thesis_on_front']) <= set(saved['front'])
    assert saved['settings']['smoke'] is True
    png = (tmp_path / 'dse.png').read_bytes()
    assert png.startswith(b'\x89PNG') and len(png) > 1000
    printed = capsys.readouterr().out
    assert all(c.name in printed for c in CONFIGS)
    assert 'front (costliest first): ' + ' > '.join(saved['front']) in printed
