"""Accelerometer recordings: CSV, NPZ and rosbag2 round trips and every load error."""

import re

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from adaptive_perception.activity.recordings import (
    Recording,
    RecordingError,
    load_recording,
    save_csv,
    save_npz,
    write_rosbag,
)

TYPESTORE = get_typestore(Stores.ROS2_KILTED)


def load_raw(*args, **kwargs):
    """load_recording without the unit check: these tests are about the file formats."""
    return load_recording(*args, check_units=False, **kwargs)
TYPES = TYPESTORE.types


def make_recording(origin=0.0, labels=True):
    """200 samples at 50 Hz: unlabelled, then 'walk', then 'sit, still', then unlabelled."""
    rng = np.random.default_rng(7)
    t = origin + np.arange(200) / 50.0
    acc = rng.normal(0.0, 3.0, size=(200, 3)) + [0.0, 0.0, 9.81]
    names = None
    if labels:
        names = np.array([''] * 10 + ['walk'] * 90 + ['sit, still'] * 80 + [''] * 20)
    return Recording(t, acc, names, 'synthetic')


def imu_msg(sec, nanosec, acc):
    return TYPES['sensor_msgs/msg/Imu'](
        header=TYPES['std_msgs/msg/Header'](
            stamp=TYPES['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec), frame_id='imu'),
        orientation=TYPES['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0),
        orientation_covariance=np.zeros(9),
        angular_velocity=TYPES['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0),
        angular_velocity_covariance=np.zeros(9),
        linear_acceleration=TYPES['geometry_msgs/msg/Vector3'](*acc),
        linear_acceleration_covariance=np.zeros(9))


def write_bag(path, messages, storage=StoragePlugin.SQLITE3):
    """Write ``(topic, msgtype, log_ns, msg)`` tuples with rosbags directly."""
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=storage) as writer:
        connections = {}
        for topic, msgtype, log_ns, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            writer.write(connections[topic], log_ns, TYPESTORE.serialize_cdr(msg, msgtype))


def read_bag(path):
    """Return ``{topic: [(log_ns, msg), ...]}`` for every message in the bag."""
    out = {}
    with Reader(path) as reader:
        for connection, log_ns, raw in reader.messages():
            msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
            out.setdefault(connection.topic, []).append((log_ns, msg))
    return out


def assert_same(loaded, rec):
    np.testing.assert_array_equal(loaded.t, rec.t)
    np.testing.assert_array_equal(loaded.acc, rec.acc)
    if rec.labels is None:
        assert loaded.labels is None
    else:
        assert loaded.labels.dtype.kind == 'U'
        assert loaded.labels.tolist() == rec.labels.tolist()


def test_rate_hz_is_the_median_rate():
    t = np.arange(101) / 100.0
    t[50:] += 0.5  # one long gap does not move the median
    rec = Recording(t, np.zeros((101, 3)), None)
    assert rec.rate_hz == pytest.approx(100.0)
    assert len(rec) == 101


def test_rate_hz_needs_two_samples():
    with pytest.raises(RecordingError, match='one: a rate needs 2 samples, it has 1'):
        _ = Recording(np.array([1.0]), np.zeros((1, 3)), None, 'one').rate_hz


def test_recording_converts_and_validates():
    rec = Recording([0, 1, 2], [[0, 0, 1]] * 3, ['a', '', 'b'])
    assert rec.t.dtype == np.float64 and rec.acc.dtype == np.float64
    assert rec.labels.tolist() == ['a', '', 'b']
    with pytest.raises(RecordingError, match=r'acc must have shape \(3, 3\)'):
        Recording([0, 1, 2], np.zeros((3, 2)), None)
    with pytest.raises(RecordingError, match=r'sample 2: t = 1.0 is not after t = 1.0'):
        Recording([0, 1, 1], np.zeros((3, 3)), None)


@pytest.mark.parametrize('labels', [True, False])
def test_csv_round_trip_is_exact(tmp_path, labels):
    rec = make_recording(origin=1.7e9 + 0.1, labels=labels)
    path = tmp_path / 'rec.csv'
    save_csv(rec, path)
    header = path.read_text().splitlines()[0]
    assert header == ('t,ax,ay,az,label' if labels else 't,ax,ay,az')
    loaded = load_raw(path)
    assert_same(loaded, rec)
    assert loaded.name == 'rec.csv'


def test_csv_comments_blank_lines_and_uneven_rate(tmp_path):
    path = tmp_path / 'phone.csv'
    path.write_text('# exported from a phone\n'
                    't, ax, ay, az, label\n'
                    '-3.5,0.1,0.2,9.8,walk\n'
                    '# a comment between rows\n'
                    '\n'
                    '-3.49,1e-3,-2,9.7,\n'
                    '-3.2,0,0,9.81,"sit, still"\n')
    rec = load_raw(path)
    assert rec.t.tolist() == [-3.5, -3.49, -3.2]
    assert rec.acc.tolist() == [[0.1, 0.2, 9.8], [0.001, -2.0, 9.7], [0.0, 0.0, 9.81]]
    assert rec.labels.tolist() == ['walk', '', 'sit, still']


def test_npz_round_trip_is_exact(tmp_path):
    for labels in (True, False):
        rec = make_recording(origin=12.25, labels=labels)
        path = tmp_path / f'rec{labels}.npz'
        save_npz(rec, path)
        assert path.exists()
        assert_same(load_raw(path), rec)


@pytest.mark.parametrize('origin', [0.0, 1.7e9 + 0.123456789])
def test_rosbag_round_trip(tmp_path, origin):
    rec = make_recording(origin=origin)
    path = tmp_path / 'bag'
    write_rosbag(rec, path)
    loaded = load_raw(path)
    # Stamps are whole nanoseconds; then the float64 of sec + nanosec * 1e-9.
    assert np.all(np.abs(loaded.t - rec.t) <= 0.5e-9 + 2 * np.spacing(rec.t))
    np.testing.assert_array_equal(loaded.acc, rec.acc)
    assert loaded.labels.tolist() == rec.labels.tolist()
    assert loaded.rate_hz == pytest.approx(50.0)

    messages = read_bag(path)
    assert set(messages) == {'/imu/data_raw', '/activity/label'}
    imu = messages['/imu/data_raw']
    assert len(imu) == 200
    log_ns, first = imu[0]
    assert log_ns == first.header.stamp.sec * 10**9 + first.header.stamp.nanosec
    assert first.header.frame_id == 'imu'
    assert first.orientation_covariance[0] == -1.0
    assert first.angular_velocity_covariance[0] == -1.0
    assert first.linear_acceleration.z == rec.acc[0, 2]
    # One String per change of label, at the time of the sample where it changes.
    changes = [(ns, msg.data) for ns, msg in messages['/activity/label']]
    assert [data for _, data in changes] == ['walk', 'sit, still', '']
    assert [ns for ns, _ in changes] == [imu[i][0] for i in (10, 100, 180)]


def test_rosbag_reads_a_single_storage_file(tmp_path):
    rec = make_recording(labels=False)
    write_rosbag(rec, tmp_path / 'bag')
    (mcap,) = (tmp_path / 'bag').glob('*.mcap')
    assert load_raw(mcap).labels is None
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    np.testing.assert_array_equal(load_raw(tmp_path / 'bag').acc, rec.acc)


def test_rosbag_without_label_topic_has_no_labels(tmp_path):
    write_rosbag(make_recording(labels=False), tmp_path / 'bag')
    assert set(read_bag(tmp_path / 'bag')) == {'/imu/data_raw'}
    assert load_raw(tmp_path / 'bag').labels is None


@pytest.mark.parametrize(('label', 'strings'), [('', 0), ('walk', 1)])
def test_rosbag_uniform_labels(tmp_path, label, strings):
    rec = make_recording()
    rec.labels[:] = label
    write_rosbag(rec, tmp_path / 'bag', label_topic='/labels')
    # All unlabelled: the topic exists without messages, so labels are '' not None.
    assert len(read_bag(tmp_path / 'bag').get('/labels', [])) == strings
    loaded = load_raw(tmp_path / 'bag', label_topic='/labels')
    assert loaded.labels.tolist() == [label] * 200


def test_rosbag_several_imu_topics(tmp_path):
    path = tmp_path / 'two_imus'
    messages = []
    for i in range(5):
        messages.append(('/left/imu', 'sensor_msgs/msg/Imu', (i + 1) * 10**8,
                         imu_msg(0, (i + 1) * 10**8, (1.0, 2.0, float(i)))))
        messages.append(('/right/imu', 'sensor_msgs/msg/Imu', (i + 1) * 10**8 + 1,
                         imu_msg(0, (i + 1) * 10**8 + 1, (-1.0, -2.0, -float(i)))))
    messages.append(('/status', 'std_msgs/msg/String', 10**9, TYPES['std_msgs/msg/String']('x')))
    write_bag(path, messages)
    with pytest.raises(RecordingError) as err:
        load_raw(path)
    assert str(path) in str(err.value)
    assert '2 sensor_msgs/msg/Imu topics: /left/imu, /right/imu' in str(err.value)
    right = load_raw(path, imu_topic='/right/imu')
    assert right.acc[:, 2].tolist() == [0.0, -1.0, -2.0, -3.0, -4.0]
    assert right.t.tolist() == pytest.approx([0.1 * i + 1e-9 for i in range(1, 6)], abs=1e-12)
    assert right.labels is None
    with pytest.raises(RecordingError, match=r"no sensor_msgs/msg/Imu topic '/status'; "
                                             r'Imu topics: /left/imu, /right/imu'):
        load_raw(path, imu_topic='/status')


def test_rosbag_without_imu_topic(tmp_path):
    path = tmp_path / 'no_imu'
    write_bag(path, [('/status', 'std_msgs/msg/String', 1, TYPES['std_msgs/msg/String']('x'))])
    with pytest.raises(RecordingError, match='0 sensor_msgs/msg/Imu topics: none'):
        load_raw(path)


def test_rosbag_zero_stamp_uses_log_time_and_labels_follow_log_time(tmp_path):
    path = tmp_path / 'stamps'
    string = TYPES['std_msgs/msg/String']
    write_bag(path, [
        ('/imu', 'sensor_msgs/msg/Imu', 1_000_000_000, imu_msg(0, 0, (0.0, 0.0, 1.0))),
        ('/imu', 'sensor_msgs/msg/Imu', 1_100_000_000, imu_msg(1, 50_000_000, (0.0, 0.0, 2.0))),
        ('/activity/label', 'std_msgs/msg/String', 1_060_000_000, string('walk')),
        ('/imu', 'sensor_msgs/msg/Imu', 1_200_000_000, imu_msg(1, 100_000_000, (0.0, 0.0, 3.0))),
        ('/activity/label', 'std_msgs/msg/String', 1_100_000_000, string('run')),
    ])
    rec = load_raw(path, imu_topic='/imu')
    assert rec.t.tolist() == pytest.approx([1.0, 1.05, 1.1], abs=1e-12)
    # Labels apply from their log time: 'walk' at 1.06 s, 'run' at 1.1 s.
    assert rec.labels.tolist() == ['', '', 'run']


def test_rosbag_non_increasing_stamps_name_the_message(tmp_path):
    path = tmp_path / 'jitter'
    write_bag(path, [('/imu', 'sensor_msgs/msg/Imu', i, imu_msg(s, ns, (0.0, 0.0, 9.8)))
                     for i, (s, ns) in enumerate([(5, 0), (5, 20), (5, 10)], 1)])
    with pytest.raises(RecordingError) as err:
        load_raw(path)
    message = str(err.value)
    assert message.startswith(f'{path}: message 2 on /imu: ')
    assert 'is not after' in message and 'at message 1 on /imu' in message


def test_write_rosbag_refuses_existing_folder_and_negative_time(tmp_path):
    (tmp_path / 'bag').mkdir()
    with pytest.raises(RecordingError, match='exists already'):
        write_rosbag(make_recording(), tmp_path / 'bag')
    with pytest.raises(RecordingError, match='ROS time cannot be negative'):
        write_rosbag(make_recording(origin=-1.0), tmp_path / 'neg')


CSV_ERRORS = [
    ('', 'empty file'),
    ('# only a comment\n\n', r'empty file \(no header line\)'),
    ('t,ax,ay,az\n', 'no samples'),
    ('0.0,1,2,3\n', 'line 1: header must be "t,ax,ay,az" or "t,ax,ay,az,label"'),
    ('t,ay,ax,az\n0,1,2,3\n', 'line 1: header must be'),
    ('# c\nt,ax,ay,az\n0,1,2,3\n1,1,2\n', 'line 4: 3 columns, the header has 4'),
    ('t,ax,ay,az,label\n0,1,2,3\n', 'line 2: 4 columns, the header has 5'),
    ('t,ax,ay,az\n0,1,2,3\n1,1,x,3\n', "line 3: ay = 'x' is not a number"),
    ('t,ax,ay,az\n0,1,2,3\n1,1,2,3\n2,1,nan,3\n', 'line 4: ay is nan, not a finite number'),
    ('t,ax,ay,az\n0,1,2,3\ninf,1,2,3\n', 'line 3: t is inf, not a finite number'),
    ('t,ax,ay,az\n0,1,2,3\n0.5,1,2,3\n# gap\n0.25,1,2,3\n',
     'line 5: t = 0.25 is not after t = 0.5 at line 3; timestamps must strictly increase'),
    ('t,ax,ay,az\n0,1,2,3\n0,1,2,3\n', 'line 3: t = 0.0 is not after t = 0.0 at line 2'),
]


@pytest.mark.parametrize(('text', 'expected'), CSV_ERRORS)
def test_csv_errors_name_file_and_line(tmp_path, text, expected):
    path = tmp_path / 'bad.csv'
    path.write_text(text)
    with pytest.raises(RecordingError) as err:
        load_raw(path)
    assert str(err.value).startswith(f'{path}: ')
    assert re.search(expected, str(err.value)), str(err.value)


NPZ_ERRORS = [
    ({'t': np.arange(3.0)}, 'missing array.* acc'),
    ({'t': np.arange(3.0), 'acc': np.zeros((3, 2))}, r'acc must have shape \(3, 3\).*\(3, 2\)'),
    ({'t': np.zeros((3, 1)), 'acc': np.zeros((3, 3))}, r't must have shape \(N,\)'),
    ({'t': np.arange(3.0), 'acc': np.zeros((3, 3)), 'labels': np.array(['a', 'b'])},
     r'labels must have shape \(3,\).*\(2,\)'),
    ({'t': np.arange(3.0), 'acc': np.zeros((3, 3)), 'labels': np.arange(3)},
     'labels must be strings'),
    ({'t': np.array([0.0, 1.0, 2.0]), 'acc': np.array([[0, 0, 0], [0, 0, 0], [0, -np.inf, 0]])},
     'index 2: ay is -inf, not a finite number'),
    ({'t': np.array([0.0, 2.0, 1.0]), 'acc': np.zeros((3, 3))},
     'index 2: t = 1.0 is not after t = 2.0 at index 1'),
    ({'t': np.arange(3.0), 'acc': np.zeros((3, 3)), 'gyro': np.zeros((3, 3))},
     'unexpected array.* gyro'),
    ({'t': np.zeros(0), 'acc': np.zeros((0, 3))}, 'no samples'),
]


@pytest.mark.parametrize(('arrays', 'expected'), NPZ_ERRORS)
def test_npz_errors_name_file_and_index(tmp_path, arrays, expected):
    path = tmp_path / 'bad.npz'
    np.savez(path, **arrays)
    with pytest.raises(RecordingError) as err:
        load_raw(path)
    assert str(err.value).startswith(f'{path}: ')
    assert re.search(expected, str(err.value)), str(err.value)


@pytest.mark.parametrize('name', ['empty.npz', 'empty.csv'])
def test_empty_files(tmp_path, name):
    (tmp_path / name).write_bytes(b'')
    with pytest.raises(RecordingError, match=f'{name}: empty file'):
        load_raw(tmp_path / name)


def test_unknown_or_missing_path(tmp_path):
    (tmp_path / 'rec.txt').write_text('t,ax,ay,az\n')
    with pytest.raises(RecordingError, match='rec.txt: unknown recording format'):
        load_raw(tmp_path / 'rec.txt')
    with pytest.raises(RecordingError, match='nope.csv: no such file or folder'):
        load_raw(tmp_path / 'nope.csv')
    (tmp_path / 'folder').mkdir()
    with pytest.raises(RecordingError, match='folder: not a rosbag2 folder'):
        load_raw(tmp_path / 'folder')
