"""The activity-recognition core without ROS: sensor model, features, generator, SPOT, dataset.

Expected values come from the thesis (Table 5.1, SPOT conditions C1-C4 of sec. 5.4.4-5.4.5),
the BMI160 figures the sensor module names, and independent computations here
(numpy's FFT, explicit window averages), not from the modules' own helpers.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_perception.activity import dataset, features, generator, sensor, spot
from adaptive_perception.activity.features import (
    FEATURE_SIZE,
    FREQUENCIES_HZ,
    MIN_SAMPLES,
    stream_features,
    window_ends,
    window_features,
)
from adaptive_perception.activity.generator import (
    ACTIVITIES,
    GAIT,
    ActivityStream,
    Subject,
    constant,
    schedule,
)
from adaptive_perception.activity.sensor import (
    CONFIGS,
    INTERNAL_HZ,
    SensorConfig,
    SensorModel,
    emulate,
    parse_config,
    raw_span,
)
from adaptive_perception.activity.spot import C1, C2, C3, C4, FIRST, UNCERTAIN, Spot

TABLE_5_1 = ('F100_A128', 'F50_A128', 'F25_A128', 'F12.5_A128', 'F6.25_A128',
             'F25_A32', 'F12.5_A32', 'F6.25_A32',
             'F50_A16', 'F25_A16', 'F12.5_A16', 'F6.25_A16',
             'F50_A8', 'F25_A8', 'F12.5_A8', 'F6.25_A8')
CONFIG_IDS = [c.name for c in CONFIGS]
SILENT = SensorModel(single_sample_noise=0.0)   # low-power configs: no noise at all
G = sensor.GRAVITY


def by_name(name):
    return next(c for c in CONFIGS if c.name == name)


def expected_window(config):
    """Raw samples one output averages, from the data sheet: A, or one period if always on."""
    period = INTERNAL_HZ / config.sampling_hz
    return config.averaging_window if config.averaging_window < period else round(period)


def fbin(hz):
    """Index of ``hz`` among the feature frequencies."""
    (index,) = np.flatnonzero(np.isclose(FREQUENCIES_HZ, hz))
    return int(index)


def spectrum_feature(vector, part, hz):
    """``part`` 'vertical' or 'horizontal'."""
    offset = 5 if part == 'vertical' else 11
    return float(vector[offset + fbin(hz)])


# -- sensor ----------------------------------------------------------------------------

def test_configs_are_table_5_1_with_unique_names():
    assert len(CONFIGS) == 16
    assert [c.name for c in CONFIGS] == list(TABLE_5_1)
    assert len({c.name for c in CONFIGS}) == 16
    assert len(set(CONFIGS)) == 16
    assert by_name('F12.5_A8') == SensorConfig(12.5, 8)
    assert by_name('F6.25_A128') == SensorConfig(6.25, 128)


@pytest.mark.parametrize('config', CONFIGS, ids=CONFIG_IDS)
def test_parse_config_round_trip(config):
    parsed = parse_config(config.name)
    assert parsed == config
    assert parsed.name == config.name
    assert str(parsed) == config.name
    assert parse_config(f'  {config.name} ') == config


@pytest.mark.parametrize('bad', ['F50A16', 'f50_a16', 'F50_16', 'F_A16', '50_A16', '',
                                 'F50_A16_x', 'F-5_A8', 'F50_A1.5'])
def test_parse_config_rejects_malformed_names(bad):
    with pytest.raises(ValueError, match='F<hz>_A<window>'):
        parse_config(bad)


@pytest.mark.parametrize('bad', ['F50_A7', 'F50_A0', 'F50_A256', 'F50_A3'])
def test_parse_config_rejects_bad_windows(bad):
    with pytest.raises(ValueError, match='averaging_window'):
        parse_config(bad)


@pytest.mark.parametrize('bad', ['F0_A8', 'F0.0_A8', 'F1600.5_A8', 'F3200_A8'])
def test_parse_config_rejects_bad_rates(bad):
    with pytest.raises(ValueError, match='sampling_hz'):
        parse_config(bad)


def test_currents_normal_mode_is_180ua_and_cheaper_duty_is_cheaper():
    for config in CONFIGS:
        duty = config.averaging_window * config.sampling_hz / INTERNAL_HZ
        if duty >= 1:
            assert config.normal_mode
            assert config.current_ua == pytest.approx(180.0)
        else:
            assert not config.normal_mode
            assert config.current_ua == pytest.approx(3.0 + duty * 177.0)
            assert config.current_ua < 180.0
    # strictly monotone in duty over the whole table
    ordered = sorted(CONFIGS, key=lambda c: c.averaging_window * c.sampling_hz)
    for cheap, dear in zip(ordered, ordered[1:], strict=False):
        if cheap.averaging_window * cheap.sampling_hz < dear.averaging_window * dear.sampling_hz:
            assert cheap.current_ua < dear.current_ua or cheap.normal_mode, (cheap, dear)
    chain = [by_name(n) for n in ('F12.5_A8', 'F12.5_A16', 'F50_A16', 'F100_A128')]
    currents = [c.current_ua for c in chain]
    assert currents == sorted(currents) and len(set(currents)) == 4
    assert by_name('F12.5_A8').current_ua == pytest.approx(3.0 + 177.0 / 16)
    assert by_name('F50_A16').current_ua == pytest.approx(3.0 + 177.0 / 2)
    # the thesis's Pareto states, costliest first
    pareto = [c.current_ua for c in sensor.THESIS_PARETO]
    assert pareto == sorted(pareto, reverse=True)


@pytest.mark.parametrize('config', CONFIGS, ids=CONFIG_IDS)
def test_emulate_constant_gives_constant_plus_model_noise(config):
    level = np.array([0.3, -1.2, G])
    start, end = 1.0, 101.0
    t0, count = raw_span(config, start, end)
    raw = np.tile(level, (count, 1))
    t, acc = emulate(t0, raw, config, start, end, np.random.default_rng(7))
    expected_rms = sensor.DEFAULT_MODEL.noise_rms(config)
    n = len(t)
    assert n == round((end - start) * config.sampling_hz)
    assert acc.shape == (n, 3)
    residual = acc - level
    assert np.abs(residual.mean(axis=0)).max() < 6 * expected_rms / math.sqrt(n)
    assert residual.std() == pytest.approx(expected_rms, rel=0.10)
    # the model: data-sheet density in normal mode, sample noise / sqrt(A) otherwise
    if config.normal_mode:
        assert expected_rms == pytest.approx(sensor.NOISE_DENSITY
                                             * math.sqrt(config.sampling_hz / 2))
    else:
        assert expected_rms == pytest.approx(sensor.DEFAULT_MODEL.single_sample_noise
                                             / math.sqrt(config.averaging_window))


def test_more_averaging_means_less_noise_in_low_power_mode():
    model = SensorModel(single_sample_noise=0.8)
    assert model.noise_rms(by_name('F12.5_A8')) > model.noise_rms(by_name('F12.5_A16'))
    assert model.noise_rms(by_name('F12.5_A16')) > model.noise_rms(by_name('F12.5_A32'))
    assert model.noise_rms(by_name('F12.5_A16')) == pytest.approx(0.2)


@pytest.mark.parametrize('config', CONFIGS, ids=CONFIG_IDS)
def test_emulate_ramp_averages_the_filter_window_on_the_global_grid(config):
    slope = 0.7
    start, end = 3.3, 9.1
    t0, count = raw_span(config, start, end)
    raw_t = t0 + np.arange(count) / INTERNAL_HZ
    raw = np.column_stack([slope * raw_t, -2 * slope * raw_t, np.full(count, 5.0)])
    t, acc = emulate(t0, raw, config, start, end, np.random.default_rng(1), SILENT)
    # stamps: every n / ODR in [start, end), nothing else
    first = math.ceil(start * config.sampling_hz)
    last = math.ceil(end * config.sampling_hz)
    np.testing.assert_allclose(t, np.arange(first, last) / config.sampling_hz, atol=1e-12)
    assert t[0] >= start and t[-1] < end
    # value: mean of the W raw samples ending at the output instant
    window = expected_window(config)
    assert config.filter_window == window
    centre = t - (window - 1) / (2 * INTERNAL_HZ)
    tol = 0.0 if not config.normal_mode else 8 * SILENT.noise_rms(config)
    np.testing.assert_allclose(acc[:, 0], slope * centre, atol=tol + 1e-9)
    np.testing.assert_allclose(acc[:, 1], -2 * slope * centre, atol=tol + 1e-9)
    np.testing.assert_allclose(acc[:, 2], 5.0, atol=tol + 1e-9)


@pytest.mark.parametrize('config', CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize('split', [(0.0, 4.0, 9.0), (0.37, 2.9137, 7.21)])
def test_emulate_in_chunks_equals_emulating_whole(config, split):
    a, b, c = split
    stream = ActivityStream(schedule(12.0, 4.0, seed=3), Subject.sample(3), seed=3)

    def run(lo, hi, seed):
        t0, count = raw_span(config, lo, hi)
        _, raw, _ = stream.raw(t0, count)
        return emulate(t0, raw, config, lo, hi, np.random.default_rng(seed), SILENT)

    t1, acc1 = run(a, b, 1)
    t2, acc2 = run(b, c, 2)
    t_all, acc_all = run(a, c, 3)
    np.testing.assert_array_equal(np.concatenate([t1, t2]), t_all)
    assert np.all(np.diff(t_all) > 0)
    # low-power configs with zero sample noise: exact; normal mode keeps its data-sheet noise
    tol = 1e-9 if not config.normal_mode else 8 * math.sqrt(2) * SILENT.noise_rms(config)
    np.testing.assert_allclose(np.concatenate([acc1, acc2]), acc_all, atol=tol, rtol=0)


@settings(max_examples=60, deadline=None)
@given(config=st.sampled_from(CONFIGS), start=st.floats(0.0, 500.0),
       length=st.floats(0.0, 4.0))
def test_raw_span_always_covers_emulate(config, start, length):
    t0, count = raw_span(config, start, start + length)
    t, acc = emulate(t0, np.zeros((count, 3)), config, start, start + length,
                     np.random.default_rng(0), SILENT)
    assert len(t) == len(acc)
    assert np.all((t >= start - 1e-9) & (t < start + length))


@pytest.mark.parametrize('name', ['F12.5_A8', 'F50_A16', 'F100_A128', 'F6.25_A128'])
def test_emulate_rejects_raw_that_does_not_cover_the_request(name):
    config = by_name(name)
    t0, count = raw_span(config, 2.0, 5.0)
    raw = np.zeros((count, 3))
    rng = np.random.default_rng(0)
    emulate(t0, raw, config, 2.0, 5.0, rng)   # just enough: fine
    with pytest.raises(ValueError, match='does not cover'):
        emulate(t0, raw, config, 2.0, 6.0, rng)             # runs out at the end
    last_output = (math.ceil(5.0 * config.sampling_hz) - 1) / config.sampling_hz
    needed = round((last_output - t0) * INTERNAL_HZ) + 1     # raw samples up to that instant
    emulate(t0, raw[:needed], config, 2.0, 5.0, rng)
    with pytest.raises(ValueError, match='does not cover'):
        emulate(t0, raw[:needed - 1], config, 2.0, 5.0, rng)
    with pytest.raises(ValueError, match='does not cover'):
        emulate(t0, raw, config, 1.0, 5.0, rng)             # starts before the raw
    with pytest.raises(ValueError, match='does not cover'):  # no room for the first window
        emulate(4.0, raw, config, 4.0, 5.0, rng)   # 4.0 s is an output instant at every rate
    emulate(4.0 - (config.filter_window - 1) / INTERNAL_HZ, raw, config, 4.0, 5.0, rng)


# -- features --------------------------------------------------------------------------

def test_feature_names_and_size():
    assert FEATURE_SIZE == 17 == len(features.FEATURE_NAMES)
    assert len(set(features.FEATURE_NAMES)) == 17
    np.testing.assert_allclose(FREQUENCIES_HZ, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])


@pytest.mark.parametrize('config', CONFIGS, ids=CONFIG_IDS)
def test_feature_size_is_the_same_at_every_rate(config):
    stream = ActivityStream(schedule(10.0, 5.0, seed=11), Subject.sample(11), seed=11)
    [(t, acc)] = dataset.emulate_states(stream, [config], np.random.default_rng(0))
    ends = window_ends(0.0, 10.0)
    np.testing.assert_allclose(ends, np.arange(2.0, 10.5, 1.0))
    rows, kept = stream_features(t, acc, ends)
    assert kept.all()
    assert rows.shape == (len(ends), FEATURE_SIZE)
    assert np.isfinite(rows).all()
    # the mean is specific force: about g in magnitude
    assert np.all(np.abs(rows[:, 0] - G) < 2.5)


def independent_features(t, acc):
    """Vertical/horizontal spectra by numpy's FFT (evenly spaced samples filling 2 s)."""
    mean = acc.mean(axis=0)
    up = mean / np.linalg.norm(mean)
    centred = acc - mean
    vertical = centred @ up
    horizontal = centred - np.outer(vertical, up)
    n = len(t)
    spec_v = 2.0 * np.abs(np.fft.rfft(vertical))[1:7] / n
    spec_h = 2.0 * np.sqrt((np.abs(np.fft.rfft(horizontal, axis=0)) ** 2).sum(axis=1))[1:7] / n
    return np.linalg.norm(mean), vertical.std(), np.sqrt(horizontal.var(axis=0).sum()), \
        spec_v, spec_h


@settings(max_examples=40, deadline=None)
@given(n=st.integers(12, 400), t0=st.floats(-100.0, 100.0), seed=st.integers(0, 2**31))
def test_window_features_equal_rfft_for_evenly_spaced_samples(n, t0, seed):
    rng = np.random.default_rng(seed)
    acc = rng.normal(0.0, 2.0, (n, 3)) + np.array([0.0, 1.0, G])
    t = t0 + np.arange(n) * (features.WINDOW_S / n)
    vector = window_features(t, acc)
    assert vector.shape == (FEATURE_SIZE,) and vector.dtype == np.float32
    norm, std_v, std_h, spec_v, spec_h = independent_features(t, acc)
    np.testing.assert_allclose(vector[[0, 3, 4]], [norm, std_v, std_h], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vector[5:11], spec_v, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(vector[11:17], spec_h, rtol=1e-4, atol=1e-4)
    assert vector[2] == 0.0    # no reference given: the convention, flagged unknown


ROTATIONS = generator.axis_rotations()


def test_there_are_24_distinct_axis_aligned_rotations():
    assert len(ROTATIONS) == 24
    assert len({tuple(r.ravel()) for r in ROTATIONS}) == 24
    for r in ROTATIONS:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), which=st.integers(0, 23))
def test_features_do_not_depend_on_the_device_orientation(seed, which):
    """Rotating the device (and its learned reference with it) leaves every feature as is."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, 2.0, 120))
    acc = rng.normal(0.0, 1.5, (120, 3)) + np.array([1.0, -2.0, G])
    reference = rng.normal(size=3)
    reference /= np.linalg.norm(reference)
    rotation = ROTATIONS[which] if which else generator.random_rotation(rng)
    np.testing.assert_allclose(window_features(t, acc @ rotation.T, rotation @ reference),
                               window_features(t, acc, reference), rtol=1e-4, atol=1e-4)


def test_upright_reference_is_learned_from_gait_and_measures_the_tilt():
    """Walk, then sit, with the device on its side: sitting reads about 35-45 deg from upright."""
    rotation = ROTATIONS[5]
    subject = generator.replace(Subject.sample(3), rotation=tuple(rotation.ravel()))
    segments = [generator.Segment('walk', 0.0, 20.0), generator.Segment('sit', 20.0, 40.0)]
    stream = ActivityStream(segments, subject, seed=4)
    [(t, acc)] = dataset.emulate_states(stream, [by_name('F50_A16')], np.random.default_rng(0))
    ends = window_ends(0.0, 40.0)
    rows, kept = stream_features(t, acc, ends)
    ends = ends[kept]
    assert rows[0, 2] == 0.0 and rows[-1, 2] == 1.0      # unknown first, then learned
    walking = rows[(ends > 5.0) & (ends < 19.0)]
    sitting = rows[ends > 26.0]
    assert np.all(walking[:, 1] > 0.97)
    angles = np.degrees(np.arccos(sitting[:, 1]))
    assert np.all((angles > 20.0) & (angles < 65.0)), angles


@pytest.mark.parametrize('rate', [100.0, 12.5])
def test_sinusoid_amplitude_at_its_bin_on_an_even_grid(rate):
    amplitude, phase = 1.7, 0.4
    t = 5.0 + np.arange(int(2 * rate)) / rate
    acc = np.column_stack([amplitude * np.sin(2 * np.pi * 1.5 * t + phase),
                           np.full(len(t), 0.0), np.full(len(t), G)])
    vector = window_features(t, acc)
    assert spectrum_feature(vector, 'horizontal', 1.5) == pytest.approx(amplitude, rel=1e-4)
    for hz in FREQUENCIES_HZ:
        if hz != 1.5:
            assert spectrum_feature(vector, 'horizontal', hz) < 1e-4
        assert spectrum_feature(vector, 'vertical', hz) < 1e-4
    assert vector[4] == pytest.approx(amplitude / math.sqrt(2), rel=1e-3)
    assert vector[0] == pytest.approx(G, rel=1e-5)


@pytest.mark.parametrize('rate, jitter', [(100.0, 0.003), (12.5, 0.012)])
def test_sinusoid_amplitude_with_jittered_stamps(rate, jitter):
    rng = np.random.default_rng(5)
    amplitude = 2.5
    t = 1.0 + np.arange(int(2 * rate)) / rate + rng.uniform(-jitter, jitter, int(2 * rate))
    t.sort()
    acc = np.zeros((len(t), 3))
    acc[:, 2] = G + amplitude * np.cos(2 * np.pi * 1.5 * t + 1.0)
    vector = window_features(t, acc)
    assert spectrum_feature(vector, 'vertical', 1.5) == pytest.approx(amplitude, rel=0.06)
    for hz in (0.5, 1.0, 2.5, 3.0):
        assert spectrum_feature(vector, 'vertical', hz) < 0.15 * amplitude


def test_window_with_missing_samples_uses_the_real_stamps():
    # samples only in the first 4/3 s of the window (two full cycles at 1.5 Hz), then a gap:
    # the real stamps still give the amplitude at 1.5 Hz; treating the samples as evenly
    # spaced over 2 s would move the energy to 1.0 Hz (other bins leak: 4/3 s is not
    # a whole number of their cycles)
    amplitude = 1.3
    t = 10.0 + np.arange(0, 400) / 300.0
    acc = np.zeros((len(t), 3))
    acc[:, 2] = G
    acc[:, 1] = amplitude * np.sin(2 * np.pi * 1.5 * t + 0.3)
    vector = window_features(t, acc)
    assert spectrum_feature(vector, 'horizontal', 1.5) == pytest.approx(amplitude, rel=0.02)


def test_window_features_need_min_samples():
    t = np.arange(MIN_SAMPLES - 1) * 0.25
    with pytest.raises(ValueError, match='at least'):
        window_features(t, np.zeros((len(t), 3)))
    t = np.arange(MIN_SAMPLES) * 0.25
    assert window_features(t, np.ones((len(t), 3))).shape == (FEATURE_SIZE,)


def test_window_ends():
    np.testing.assert_allclose(window_ends(0.5, 5.2), [2.5, 3.5, 4.5])
    np.testing.assert_allclose(window_ends(0.0, 3.0), [2.0, 3.0])
    assert len(window_ends(0.0, 1.9)) == 0


def test_stream_features_skip_windows_in_a_gap_and_keep_the_rest():
    rate = 12.5
    t = np.arange(0, int(20 * rate)) / rate
    t = t[(t <= 8.0) | (t >= 13.0)]
    rng = np.random.default_rng(2)
    acc = rng.normal(0.0, 1.0, (len(t), 3))
    ends = window_ends(0.0, 20.0)
    rows, kept = stream_features(t, acc, ends)
    counts = np.array([np.count_nonzero((t > e - 2.0) & (t <= e)) for e in ends])
    np.testing.assert_array_equal(kept, counts >= MIN_SAMPLES)
    # windows entirely inside the gap are skipped, full windows on either side are kept
    for end in (10.0, 11.0, 12.0):
        assert not kept[np.isclose(ends, end)].any()
    for end in (2.0, 5.0, 8.0, 15.0, 20.0):
        assert kept[np.isclose(ends, end)].all()
    assert 0 < kept.sum() < len(ends)
    assert rows.shape == (kept.sum(), FEATURE_SIZE)
    reference = features.UprightReference()
    for row, end in zip(rows, ends[kept], strict=True):
        mask = (t > end - 2.0) & (t <= end)
        np.testing.assert_array_equal(row, reference(t[mask], acc[mask]))


def test_stream_features_with_no_full_window():
    t = np.arange(5) / 12.5
    rows, kept = stream_features(t, np.zeros((5, 3)), np.array([2.0, 3.0]))
    assert rows.shape == (0, FEATURE_SIZE)
    assert not kept.any()


# -- generator -------------------------------------------------------------------------

def make_stream(seed, duration=30.0, segment_s=8.0, subject=0):
    return ActivityStream(schedule(duration, segment_s, seed), Subject.sample(subject), seed)


def test_stream_is_deterministic_by_seed():
    a = make_stream(21).raw(1.5, 8000)
    b = make_stream(21).raw(1.5, 8000)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert Subject.sample(4) == Subject.sample(4)
    assert Subject.sample(4) != Subject.sample(5)


def test_different_seeds_give_different_streams():
    _, a, _ = make_stream(1).raw(0.0, 4000)
    _, b, _ = make_stream(2).raw(0.0, 4000)
    assert np.abs(a - b).max() > 0.1
    assert schedule(300.0, 20.0, 1) != schedule(300.0, 20.0, 2)


def test_raw_is_independent_of_chunking():
    stream = make_stream(9, duration=30.0, segment_s=6.0)
    t_all, acc_all, lab_all = stream.raw(0.0, 30 * 1600)
    for start, count in ((0.0, 100), (5.4375, 3000), (11.0, 16000), (29.0, 1600)):
        first = round(start * INTERNAL_HZ)
        t, acc, lab = stream.raw(start, count)
        np.testing.assert_array_equal(t, t_all[first:first + count])
        np.testing.assert_array_equal(lab, lab_all[first:first + count])
        # fidgets more than 2 s outside a chunk are cut off: ~1e-12, not exactly zero
        np.testing.assert_allclose(acc, acc_all[first:first + count], atol=1e-9, rtol=0)


@settings(max_examples=50, deadline=None)
@given(duration=st.floats(1.0, 2000.0), segment_s=st.floats(1.0, 120.0),
       seed=st.integers(0, 2**31))
def test_schedule_covers_duration_and_alternates(duration, segment_s, seed):
    segments = schedule(duration, segment_s, seed)
    assert segments[0].start == 0.0
    assert segments[-1].end == duration
    for prev, nxt in zip(segments, segments[1:], strict=False):
        assert prev.end == nxt.start
        assert prev.activity != nxt.activity
    for s in segments:
        assert s.activity in ACTIVITIES
        assert s.end > s.start
        assert s.end - s.start <= 1.3 * segment_s + 1e-9


def test_constant_and_unknown_activity():
    assert constant('sit', 12.0) == [generator.Segment('sit', 0.0, 12.0)]
    with pytest.raises(ValueError, match='unknown activity'):
        constant('jog', 12.0)
    with pytest.raises(ValueError):
        ActivityStream([], Subject.sample(0), 0)


def test_labels_follow_the_schedule():
    stream = make_stream(4, duration=40.0, segment_s=10.0)
    t, _, labels = stream.raw(0.0, 40 * 1600)
    for seg in stream.segments:
        inside = (t >= seg.start) & (t < seg.end)
        assert np.all(labels[inside] == ACTIVITIES.index(seg.activity))


def activity_signal(activity, subject, seed, seconds=40.0, rate=100.0):
    stream = ActivityStream(constant(activity, seconds), Subject.sample(subject), seed)
    t = np.arange(0.0, seconds, 1.0 / rate)
    acc, labels = stream.signal(t)
    assert np.all(labels == ACTIVITIES.index(activity))
    return t, acc


@pytest.mark.parametrize('subject', [0, 1, 2])
@pytest.mark.parametrize('activity', ['sit', 'stand', 'lie'])
def test_static_activities_measure_about_g_with_little_motion(activity, subject):
    _, acc = activity_signal(activity, subject, seed=subject + 40)
    norm = np.linalg.norm(acc, axis=1)
    assert norm.mean() == pytest.approx(G, abs=0.6)
    assert acc.std(axis=0).max() < 0.5


def peak_hz(x, rate, lo=0.5, hi=5.0):
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    band = (freqs > lo) & (freqs < hi)
    return freqs[band][np.argmax(spectrum[band])], freqs, spectrum


@pytest.mark.parametrize('subject', [0, 1, 5])
@pytest.mark.parametrize('activity', list(GAIT))
def test_gait_has_a_spectral_peak_at_its_step_frequency(activity, subject):
    rate = 100.0
    _, acc = activity_signal(activity, subject, seed=subject * 13 + 5, rate=rate)
    step_hz = GAIT[activity][0] * Subject.sample(subject).cadence
    assert acc[:, 2].std() > 1.0
    # forward axis: strongest component at the step frequency
    forward, freqs, _ = peak_hz(acc[:, 0], rate)
    assert forward == pytest.approx(step_hz, rel=0.12)
    # lateral sway: at the stride frequency, half the step rate
    lateral, _, _ = peak_hz(acc[:, 1], rate)
    assert lateral == pytest.approx(step_hz / 2, rel=0.12)
    # vertical: a clear local peak at the step frequency (heel strikes may make the
    # second harmonic the largest, so only a peak near step_hz is required)
    _, freqs, vertical = peak_hz(acc[:, 2], rate)
    near = np.abs(freqs - step_hz) < 0.12 * step_hz
    background = np.median(vertical[(freqs > 0.3) & (freqs < 5.0)])
    assert vertical[near].max() > 20 * background


@pytest.mark.parametrize('subject', [0, 1, 2, 3, 4, 5])
def test_lie_is_horizontal_and_sit_leans_back(subject):
    seed = subject + 90
    _, lie = activity_signal('lie', subject, seed, seconds=20.0)
    _, sit = activity_signal('sit', subject, seed, seconds=20.0)
    _, stand = activity_signal('stand', subject, seed, seconds=20.0)
    lie_mean, sit_mean, stand_mean = lie.mean(0), sit.mean(0), stand.mean(0)
    # lying: gravity in the horizontal (x/y) plane of the upright device
    assert abs(lie_mean[2]) < 0.35 * G
    assert np.hypot(lie_mean[0], lie_mean[1]) > 0.9 * G
    # standing: gravity mostly along z
    assert stand_mean[2] > 0.9 * G
    # sitting: pelvis tilted back, so the forward axis reads lower than when standing
    assert sit_mean[0] < stand_mean[0] - 2.0


# -- SPOT ------------------------------------------------------------------------------

def feed(machine, labels):
    return [machine.update(label) for label in labels]


def test_spot_first_step():
    machine = Spot(4, 2)
    assert (machine.state, machine.counter, machine.last_label) == (0, 0, None)
    step = machine.update('walk', confidence=0.01)
    assert step == spot.Step(FIRST, 0, 0)
    assert machine.last_label == 'walk'


def test_spot_c1_then_c2():
    machine = Spot(4, 3)
    feed(machine, ['walk'])
    assert machine.update('walk') == spot.Step(C1, 0, 1)
    assert machine.update('walk') == spot.Step(C1, 0, 2)
    assert machine.update('walk') == spot.Step(C2, 1, 0)      # counter reached 3: step down
    assert machine.update('walk') == spot.Step(C1, 1, 1)
    assert (machine.state, machine.counter) == (1, 1)


def test_spot_c3_jumps_to_the_top_and_restarts_the_count():
    machine = Spot(4, 1)
    steps = feed(machine, ['walk', 'walk', 'walk'])
    assert [s.condition for s in steps] == [FIRST, C2, C2]
    assert machine.state == 2
    assert machine.update('sit') == spot.Step(C3, 0, 0)
    assert machine.last_label == 'sit'
    assert machine.update('sit') == spot.Step(C2, 1, 0)      # compared with the new label


def test_spot_c3_clears_a_partial_count():
    machine = Spot(3, 3)
    feed(machine, ['a', 'a', 'a'])
    assert machine.counter == 2
    assert machine.update('b') == spot.Step(C3, 0, 0)
    assert machine.update('b') == spot.Step(C1, 0, 1)


def test_spot_c4_stays_in_the_cheapest_state():
    machine = Spot(2, 2)
    feed(machine, ['walk', 'walk'])
    assert machine.update('walk') == spot.Step(C2, 1, 0)
    for _ in range(5):
        assert machine.update('walk') == spot.Step(C4, 1, 0)
    single = Spot(1, 3)
    assert single.update('x').condition == FIRST
    assert single.update('x') == spot.Step(C4, 0, 0)
    assert single.update('y') == spot.Step(C3, 0, 0)


def test_spot_with_confidence_ignores_unsure_changes():
    machine = Spot(4, 1, confidence_threshold=0.6)
    feed(machine, ['walk', 'walk'])
    assert machine.state == 1
    assert machine.update('sit', confidence=0.6) == spot.Step(UNCERTAIN, 1, 0)   # at: ignored
    assert machine.update('sit', confidence=0.2) == spot.Step(UNCERTAIN, 1, 0)
    assert machine.last_label == 'walk'
    assert machine.update('walk') == spot.Step(C2, 2, 0)     # still counting 'walk'
    assert machine.update('sit', confidence=0.61) == spot.Step(C3, 0, 0)         # above: jump
    assert machine.last_label == 'sit'


def test_spot_uncertain_keeps_a_partial_count():
    machine = Spot(4, 3, confidence_threshold=0.5)
    feed(machine, ['a', 'a'])
    assert machine.counter == 1
    assert machine.update('b', confidence=0.3).condition == UNCERTAIN
    assert machine.counter == 1
    assert machine.update('a') == spot.Step(C1, 0, 2)


def test_spot_without_confidence_threshold_any_change_jumps():
    machine = Spot(3, 1)
    feed(machine, ['a', 'a'])
    assert machine.update('b', confidence=0.01) == spot.Step(C3, 0, 0)
    zero = Spot(3, 1, confidence_threshold=0.0)
    feed(zero, ['a', 'a'])
    assert zero.update('b', confidence=0.0).condition == UNCERTAIN
    assert zero.update('b', confidence=1e-6).condition == C3


def test_spot_set_top_caps_the_state():
    machine = Spot(4, 1)
    assert machine.state == 0
    machine.set_top(2)
    assert (machine.top, machine.state, machine.counter) == (2, 2, 0)   # dropped to the cap
    feed(machine, ['a', 'a'])
    assert machine.state == 3
    assert machine.update('b') == spot.Step(C3, 2, 0)        # back to the cap, not 0
    machine.set_top(1)
    assert machine.state == 2                               # below the cap: unchanged
    assert machine.update('c') == spot.Step(C3, 1, 0)
    machine.set_top(0)
    assert machine.state == 1
    assert machine.update('d') == spot.Step(C3, 0, 0)
    capped = Spot(4, 2, top=3)
    assert capped.state == 3
    feed(capped, ['a'])
    assert capped.update('a').condition == C4
    for bad in (-1, 4):
        with pytest.raises(ValueError, match='top state'):
            machine.set_top(bad)
    with pytest.raises(ValueError, match='top state'):
        Spot(4, 1, top=4)


def test_spot_set_top_drop_clears_the_count():
    machine = Spot(4, 3)
    feed(machine, ['a', 'a', 'a'])
    assert (machine.state, machine.counter) == (0, 2)
    machine.set_top(1)
    assert (machine.state, machine.counter) == (1, 0)
    assert machine.update('a') == spot.Step(C1, 1, 1)


def test_spot_reset_forgets_the_history():
    machine = Spot(4, 1, top=1)
    feed(machine, ['a', 'a', 'a'])
    assert machine.state == 3
    machine.reset()
    assert (machine.state, machine.counter, machine.last_label) == (1, 0, None)
    assert machine.update('z').condition == FIRST


def test_spot_configure_keeps_state():
    machine = Spot(4, 1)
    feed(machine, ['a', 'a', 'a'])
    machine.configure(5, 0.7)
    assert (machine.state, machine.stability_threshold, machine.confidence_threshold) == \
        (2, 5, 0.7)
    assert machine.update('a') == spot.Step(C1, 2, 1)


@pytest.mark.parametrize('kwargs', [
    {'stability_threshold': 0}, {'stability_threshold': -2},
    {'stability_threshold': 2, 'confidence_threshold': -0.1},
    {'stability_threshold': 2, 'confidence_threshold': 1.0},
    {'stability_threshold': 2, 'confidence_threshold': 1.5},
    {'stability_threshold': 2, 'confidence_threshold': float('nan')},
])
def test_spot_bad_thresholds_raise(kwargs):
    with pytest.raises(ValueError, match='threshold'):
        Spot(4, **kwargs)
    machine = Spot(4, 2)
    with pytest.raises(ValueError, match='threshold'):
        machine.configure(kwargs['stability_threshold'], kwargs.get('confidence_threshold'))
    assert machine.stability_threshold == 2 and machine.confidence_threshold is None


def test_spot_needs_a_state():
    with pytest.raises(ValueError):
        Spot(0, 1)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), num_states=st.integers(1, 5), k=st.integers(1, 4),
       confidence_threshold=st.one_of(st.none(), st.floats(0.0, 0.95)))
def test_spot_properties(data, num_states, k, confidence_threshold):
    top = data.draw(st.integers(0, num_states - 1))
    events = data.draw(st.lists(st.tuples(st.integers(0, 2), st.floats(0.0, 1.0)),
                                min_size=1, max_size=60))
    machine = Spot(num_states, k, confidence_threshold, top=top)
    last = num_states - 1
    same_since_change = 0      # same-label predictions since the last change (or the first)
    previous = machine.state
    for i, (label, confidence) in enumerate(events):
        step = machine.update(label, confidence)
        assert step.state == machine.state and step.counter == machine.counter
        assert top <= machine.state <= last
        assert 0 <= machine.counter < k
        assert machine.state - previous <= 1
        if i == 0:
            assert step.condition == FIRST and machine.state == top
        elif step.condition == C3:
            assert machine.state == top and machine.counter == 0
            same_since_change = 0
        elif step.condition == UNCERTAIN:
            assert confidence_threshold is not None and confidence <= confidence_threshold
            assert machine.state == previous
        else:
            assert step.condition in (C1, C2, C4)
            same_since_change += 1
        if step.condition in (C1, C4, UNCERTAIN, FIRST):
            assert machine.state == previous
        if step.condition == C2:
            assert machine.state == previous + 1 and machine.counter == 0
        if step.condition == C4:
            assert previous == last
        if machine.state < previous:
            assert step.condition == C3
        # the state is exactly the number of completed stable runs below the cap
        assert machine.state == min(last, top + same_since_change // k)
        if machine.state == last:
            assert same_since_change >= k * (last - top)
        previous = machine.state


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.one_of(st.tuples(st.just('label'), st.integers(0, 2)),
                              st.tuples(st.just('top'), st.integers(0, 3))),
                    max_size=60))
def test_spot_state_stays_within_the_cap(ops):
    machine = Spot(4, 2)
    for kind, value in ops:
        if kind == 'top':
            machine.set_top(value)
        else:
            step = machine.update(value)
            if step.condition == C3:
                assert machine.state == machine.top
        assert machine.top <= machine.state <= 3


# -- dataset ---------------------------------------------------------------------------

def test_training_and_validation_subjects_are_disjoint():
    assert not set(dataset.TRAIN_SUBJECTS) & set(dataset.VAL_SUBJECTS)
    assert len(dataset.TRAIN_SUBJECTS) > 0 and len(dataset.VAL_SUBJECTS) > 0
    train = {Subject.sample(s) for s in dataset.TRAIN_SUBJECTS}
    assert not train & {Subject.sample(s) for s in dataset.VAL_SUBJECTS}


@pytest.mark.parametrize('name', ['F50_A16', 'F6.25_A8'])
def test_synthetic_windows_shape_labels_and_determinism(name):
    config = by_name(name)
    kwargs = {'subjects': (0, 1000), 'minutes': 1.0, 'segment_s': 15.0, 'seed': 4}
    a = dataset.synthetic_windows(config, **kwargs)
    b = dataset.synthetic_windows(config, **kwargs)
    per_subject = len(window_ends(0.0, 60.0))
    assert per_subject == 59
    assert a.features.shape == (2 * per_subject, FEATURE_SIZE)
    assert a.labels.shape == (2 * per_subject,)
    assert a.class_names == ACTIVITIES
    assert a.labels.dtype.kind == 'i'
    assert set(a.labels.tolist()) <= set(range(len(ACTIVITIES)))
    assert len(set(a.labels.tolist())) >= 3
    assert np.isfinite(a.features).all()
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    # labels are the activity at each window's centre
    stream = dataset.subject_stream(0, 1.0, 15.0, 4)
    centres = window_ends(0.0, 60.0) - features.WINDOW_S / 2
    np.testing.assert_array_equal(a.labels[:per_subject], stream.label_at(centres))
    c = dataset.synthetic_windows(config, **{**kwargs, 'seed': 5})
    assert not np.array_equal(a.features, c.features)


def test_windows_concat():
    empty = dataset.Windows.concat([])
    assert empty.features.shape == (0, FEATURE_SIZE) and empty.labels.shape == (0,)
    one = dataset.Windows(np.ones((2, FEATURE_SIZE), np.float32), np.array([0, 1]))
    two = dataset.Windows(np.zeros((3, FEATURE_SIZE), np.float32), np.array([2, 2, 2]))
    joined = dataset.Windows.concat([one, two])
    np.testing.assert_array_equal(joined.labels, [0, 1, 2, 2, 2])
    other = dataset.Windows(np.zeros((1, FEATURE_SIZE), np.float32), np.array([0]), ('a',))
    with pytest.raises(ValueError, match='class names'):
        dataset.Windows.concat([one, other])


@pytest.mark.parametrize('bad', [0, 1.5, True, -2])
def test_spot_refuses_a_threshold_that_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match='integer >= 1'):
        Spot(4, bad)


# -- margin SPOT -------------------------------------------------------------------------

def test_margin_spot_steps_down_when_sure_and_up_one_on_a_sure_change():
    machine = spot.MarginSpot(4, stability_threshold=2, margin_threshold=0.5)
    assert machine.update_margin('walk', 0.9).condition == FIRST
    for _ in range(6):
        machine.update_margin('walk', 0.9)
    assert machine.state == 3
    step = machine.update_margin('sit', 0.8)          # a change: one state up, not the top
    assert (step.condition, step.state) == (spot.UP, 2)
    step = machine.update_margin('stand', 0.2)        # another one: one more
    assert (step.condition, step.state) == (spot.UP, 1)
    step = machine.update_margin('stand', 0.2)        # still unsure: one more, the top
    assert (step.condition, step.state) == (spot.UP, 0)


def test_margin_spot_steps_up_one_when_unsure_of_the_same_activity():
    machine = spot.MarginSpot(3, stability_threshold=1, margin_threshold=0.5, top=0)
    machine.update_margin('walk', 0.9)
    machine.update_margin('walk', 0.9)
    machine.update_margin('walk', 0.9)
    assert machine.state == 2
    step = machine.update_margin('walk', 0.1)
    assert (step.condition, step.state, step.counter) == (spot.UP, 1, 0)
    # still unclear one state up: climbing did not help, so it counts towards going down
    step = machine.update_margin('walk', 0.1)
    assert (step.condition, step.state) == (C2, 2)
    machine.update_margin('walk', 0.9)                     # a clear window re-arms the climb
    assert machine.update_margin('walk', 0.1).condition == spot.UP
    machine.set_top(1)
    machine.update_margin('walk', 0.9)
    assert machine.update_margin('walk', 0.1).state == 1   # never above the cap


def test_margin_spot_threshold_is_checked():
    with pytest.raises(ValueError, match='margin_threshold'):
        spot.MarginSpot(3, 2, margin_threshold=1.5)


# -- generator variety and sensor effects -------------------------------------------------

def test_default_variety_keeps_the_original_subjects():
    subject = Subject.sample(7)
    assert subject == Subject.sample(7, generator.UPRIGHT)
    assert subject.rotation == generator.IDENTITY and subject.scale == (1.0, 1.0, 1.0)


def test_rotated_wearer_is_the_upright_signal_rotated_and_scaled():
    upright = Subject.sample(9)
    variety = generator.Variety('axis', scale_sd=0.0, bias_sd=0.0, axis_index=7)
    rotated = Subject.sample(9, variety)
    np.testing.assert_allclose(np.reshape(rotated.rotation, (3, 3)), ROTATIONS[7])
    segments = [generator.Segment('sit', 0.0, 5.0)]
    t = np.linspace(0.0, 5.0, 50)
    base, _ = ActivityStream(segments, generator.replace(upright, bias=(0.0, 0.0, 0.0)),
                             seed=1).signal(t)
    turned, _ = ActivityStream(segments, rotated, seed=1).signal(t)
    np.testing.assert_allclose(turned, base @ ROTATIONS[7].T, atol=1e-9)
    random = Subject.sample(9, generator.Variety('random', scale_sd=0.05))
    matrix = np.reshape(random.rotation, (3, 3))
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(matrix) == pytest.approx(1.0)
    assert random.scale != (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match='orientation'):
        generator.Variety('sideways')


def test_sensor_range_clips_and_stamp_jitter_keeps_stamps_increasing():
    config = by_name('F50_A16')
    raw = np.full((3200, 3), 100.0)
    model = SensorModel(0.0, range_ms2=8 * G, stamp_jitter_s=0.004)
    t, acc = emulate(0.0, raw, config, 0.1, 1.9, np.random.default_rng(0), model)
    assert np.all(acc == 8 * G)
    grid = np.arange(5, 95) / 50.0
    assert np.all(np.diff(t) > 0) and np.all(np.abs(t - grid) <= 0.4 / 50 + 1e-12)
    assert np.abs(t - grid).max() > 0.001
