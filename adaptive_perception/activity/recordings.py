"""Labelled 3-axis accelerometer recordings: load, validate and save.

Users bring their own recordings to train and evaluate the activity recognizer,
so every loader checks the file and raises ``RecordingError`` naming the file and
the line, index or message at fault; nothing is silently dropped or reordered.
Pure Python (no rclpy): rosbag2 files are read and written with ``rosbags``.

Formats (``load_recording`` picks one by the path):

* **CSV** (``*.csv``): a header line ``t,ax,ay,az`` or ``t,ax,ay,az,label`` (this
  column order, header required), then one sample per line. ``t`` in seconds (any
  origin), ``ax ay az`` in m/s^2. Any sampling rate, uniform or not. Lines starting
  with ``#`` and blank lines are ignored. An empty ``label`` field means an
  unlabelled sample. Errors give the 1-based line number in the file.
* **NPZ** (``*.npz``): arrays ``t`` (N,), ``acc`` (N, 3) and optionally ``labels``
  (N,) of strings (``''`` = unlabelled); no other arrays, no pickled objects.
  Errors give the 0-based sample index.
* **rosbag2** (a folder with ``metadata.yaml``, or a single ``*.mcap`` / ``*.db3``
  file, or a folder holding exactly one): ``sensor_msgs/msg/Imu`` messages on
  ``imu_topic`` (default: the bag's only Imu topic). ``t`` is ``header.stamp``
  (the message's log time where the stamp is zero), ``acc`` is
  ``linear_acceleration``; samples keep the bag's order. Labels come from
  ``std_msgs/msg/String`` messages on ``label_topic``: each one labels the samples
  from its log time on (earlier samples get ``''``); without that topic the
  recording has no labels. Errors give the 0-based message index on the topic.

In every format timestamps must be finite and strictly increasing, and values
finite. Units: ``t`` in seconds and acceleration in m/s^2 with gravity included
(about 9.81 at rest). ``load_recording(units='g', time_units='ms')`` converts data
stored in g or with millisecond stamps; without that, data that look like g
(median |a| near 1) or like milliseconds (a "rate" below 1 Hz that would be
plausible in ms) are an error that names the option, because a model fed g
instead of m/s^2 answers confidently and wrongly. Axes: any device orientation
works with the shipped model (it measures relative to gravity); the documented
convention is x forward, y left, z up when the wearer stands. CSV and NPZ
round-trip exactly (CSV floats are written with ``repr``); rosbag2 stamps are
rounded to the nanosecond.
"""

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

IMU_TYPE = 'sensor_msgs/msg/Imu'
STRING_TYPE = 'std_msgs/msg/String'
CSV_COLUMNS = ('t', 'ax', 'ay', 'az')
NPZ_ARRAYS = ('t', 'acc', 'labels')


class RecordingError(ValueError):
    """A recording that cannot be used; the message names the file and the place."""


@dataclass
class Recording:
    """One labelled accelerometer stream.

    ``t`` float64 (N,) seconds, strictly increasing; ``acc`` float64 (N, 3) m/s^2
    (x, y, z); ``labels`` (N,) str array with ``''`` for an unlabelled sample, or
    None when the source has no labels at all; ``name`` says where it came from.
    Construction converts the dtypes and validates, so every Recording is usable.
    """

    t: np.ndarray
    acc: np.ndarray
    labels: np.ndarray | None
    name: str = ''
    where: Callable[[int], str] | None = field(default=None, compare=False, repr=False)

    def locate(self, index: int) -> str:
        """Where sample ``index`` is in the source file (a CSV line, a bag message ...)."""
        return self.where(index) if self.where is not None else f'sample {index}'

    def __post_init__(self):
        self.t, self.acc, self.labels = _checked(
            self.t, self.acc, self.labels, self.name or 'recording', lambda i: f'sample {i}')

    @property
    def rate_hz(self) -> float:
        """Median sample rate, robust to the odd dropped or late sample."""
        if len(self.t) < 2:
            raise RecordingError(
                f'{self.name or "recording"}: a rate needs 2 samples, it has {len(self.t)}')
        return float(1.0 / np.median(np.diff(self.t)))

    def __len__(self) -> int:
        return len(self.t)


def _checked(t, acc, labels, source: str, locate: Callable[[int], str]):
    """Return (t, acc, labels) as float64/str arrays or raise naming the first fault.

    ``locate`` turns a sample index into the place a user finds it (a CSV line,
    a bag message), so the error points into the file rather than at an index;
    loaders call this before building the Recording, which checks again generically.
    """
    try:
        t = np.asarray(t, dtype=np.float64)
        acc = np.asarray(acc, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RecordingError(f'{source}: t and acc must be numbers ({exc})') from None
    if t.ndim != 1:
        raise RecordingError(f'{source}: t must have shape (N,), got {t.shape}')
    if acc.shape != (len(t), 3):
        raise RecordingError(
            f'{source}: acc must have shape ({len(t)}, 3) to match t, got {acc.shape}')
    if len(t) == 0:
        raise RecordingError(f'{source}: no samples')
    if labels is not None:
        labels = np.asarray(labels)
        if labels.dtype.kind != 'U':
            raise RecordingError(
                f'{source}: labels must be strings (dtype <U), got dtype {labels.dtype}')
        if labels.shape != t.shape:
            raise RecordingError(
                f'{source}: labels must have shape ({len(t)},) to match t, got {labels.shape}')
    finite = np.isfinite(t) & np.isfinite(acc).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        row = zip(CSV_COLUMNS, (float(t[i]), *acc[i].tolist()), strict=True)
        column, value = next((c, v) for c, v in row if not math.isfinite(v))
        raise RecordingError(f'{source}: {locate(i)}: {column} is {value!r}, not a finite number')
    backwards = np.diff(t) <= 0
    if backwards.any():
        i = int(np.argmax(backwards)) + 1
        raise RecordingError(
            f'{source}: {locate(i)}: t = {float(t[i])!r} is not after t = {float(t[i - 1])!r} at '
            f'{locate(i - 1)}; timestamps must strictly increase')
    return t, acc, labels


ACC_UNITS = {'m/s2': 1.0, 'g': 9.80665}
TIME_UNITS = {'s': 1.0, 'ms': 1e-3, 'us': 1e-6, 'ns': 1e-9}
G_RANGE = (0.5, 2.0)         # median |a| (in the given unit) that means "this is g"
MS2_RANGE = (4.0, 20.0)      # median |a| plausible for m/s^2 with gravity
RATE_RANGE = (1.0, 5000.0)   # plausible IMU rates, Hz


def load_recording(path, *, imu_topic: str | None = None,
                   label_topic: str = '/activity/label', units: str = 'm/s2',
                   time_units: str = 's', check_units: bool = True) -> Recording:
    """Load a CSV, NPZ or rosbag2 recording (see the module docstring for formats).

    ``units`` / ``time_units`` convert data stored in g or ms; ``check_units``
    refuses data whose magnitude or rate says the units are not the ones given.
    """
    if units not in ACC_UNITS:
        raise RecordingError(f'units must be one of {", ".join(ACC_UNITS)}, got {units!r}')
    if time_units not in TIME_UNITS:
        raise RecordingError(
            f'time units must be one of {", ".join(TIME_UNITS)}, got {time_units!r}')
    recording = _load(Path(path), imu_topic, label_topic)
    if units != 'm/s2' or time_units != 's':
        recording = replace(recording, t=recording.t * TIME_UNITS[time_units],
                            acc=recording.acc * ACC_UNITS[units])
    if check_units:
        check_recording_units(recording, units, time_units)
    return recording


def median_norm(acc: np.ndarray) -> float:
    """Median length of the acceleration vectors: about g at rest or in steady activity."""
    return float(np.median(np.linalg.norm(np.asarray(acc, dtype=np.float64), axis=1)))


def check_recording_units(recording: Recording, units: str = 'm/s2',
                          time_units: str = 's') -> None:
    """Raise RecordingError with the fix if the data do not look like m/s^2 and seconds."""
    source = recording.name or 'recording'
    if len(recording) >= 2:
        rate = recording.rate_hz
        if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
            hint = ''
            for unit, factor in TIME_UNITS.items():
                scaled = rate / factor * TIME_UNITS[time_units]
                if unit != time_units and RATE_RANGE[0] <= scaled <= RATE_RANGE[1]:
                    hint = (f'; the stamps look like {unit} ({scaled:g} Hz): pass '
                            f'--time-units {unit}')
                    break
            raise RecordingError(f'{source}: sample rate {rate:.4g} Hz with t read as '
                                 f'{time_units}{hint or "; expected 1-5000 Hz"}')
    norm = median_norm(recording.acc)
    if units == 'm/s2' and G_RANGE[0] <= norm <= G_RANGE[1]:
        raise RecordingError(f'{source}: median |a| is {norm:.2f}: the values look like g, '
                             f'not m/s^2 (gravity alone is 9.81 m/s^2); pass --units g')


def load_label_map(path) -> dict:
    """Read a label mapping file: one ``user_label,model_label`` per line.

    Blank lines and lines starting with ``#`` are skipped. A label mapped twice to
    different names is an error naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f'{path}: no such label mapping file')
    mapping, lines = {}, {}
    with open(path, newline='', encoding='utf-8-sig') as f:
        for line_no, line in enumerate(f, 1):
            if line.startswith('#') or not line.strip():
                continue
            row = next(csv.reader([line]))
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise RecordingError(f'{path}: line {line_no}: expected "user_label,model_label"'
                                     f', got {line.strip()!r}')
            source, target = row[0].strip(), row[1].strip()
            if mapping.get(source, target) != target:
                raise RecordingError(f'{path}: line {line_no}: {source!r} is already mapped to '
                                     f'{mapping[source]!r} on line {lines[source]}')
            mapping[source], lines[source] = target, line_no
    return mapping


def map_labels(recording: Recording, mapping: dict) -> Recording:
    """Return ``recording`` with its labels renamed by ``mapping`` (others unchanged)."""
    if recording.labels is None or not mapping:
        return recording
    names, codes = np.unique(recording.labels, return_inverse=True)
    renamed = np.array([mapping.get(str(n), str(n)) for n in names], dtype=str)
    return replace(recording, labels=renamed[codes].reshape(recording.labels.shape))


def label_counts(recordings) -> dict:
    """Label -> (samples, first place 'file: line N') over labelled recordings, '' excluded."""
    counts = {}
    for recording in recordings:
        if recording.labels is None:
            continue
        names, first, number = np.unique(recording.labels, return_index=True,
                                         return_counts=True)
        for name, index, count in zip(names.tolist(), first.tolist(), number.tolist(),
                                      strict=True):
            if name == '':
                continue
            samples, place = counts.get(name, (0, None))
            counts[name] = (samples + count,
                            place or f'{recording.name}: {recording.locate(index)}')
    return counts


def unknown_labels_error(unknown: dict, known, fix: str) -> RecordingError:
    """One message listing each unknown label with its count and first place, and the fix."""
    listed = '; '.join(f'{name!r} ({samples} samples, first at {place})'
                       for name, (samples, place) in sorted(unknown.items()))
    return RecordingError(f'labels not among the classes ({", ".join(known)}): {listed}; '
                          f'{fix}')


def _load(path: Path, imu_topic, label_topic) -> Recording:
    if not path.exists():
        raise RecordingError(f'{path}: no such file or folder')
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in ('.mcap', '.db3'):
        return _load_rosbag(path, imu_topic, label_topic)
    if path.stat().st_size == 0:
        raise RecordingError(f'{path}: empty file')
    if suffix == '.csv':
        return _load_csv(path)
    if suffix == '.npz':
        return _load_npz(path)
    raise RecordingError(
        f'{path}: unknown recording format; expected *.csv, *.npz or a rosbag2 folder')


def _load_csv(path: Path) -> Recording:
    header = None
    lines, rows = [], []
    with open(path, newline='', encoding='utf-8-sig') as f:
        for line_no, line in enumerate(f, 1):
            if line.startswith('#') or not line.strip():
                continue
            row = next(csv.reader([line]))
            if header is None:
                header = tuple(c.strip() for c in row)
                if header not in (CSV_COLUMNS, (*CSV_COLUMNS, 'label')):
                    raise RecordingError(
                        f'{path}: line {line_no}: header must be "t,ax,ay,az" or '
                        f'"t,ax,ay,az,label", got {line.strip()!r}')
                continue
            if len(row) != len(header):
                raise RecordingError(
                    f'{path}: line {line_no}: {len(row)} columns, the header has '
                    f'{len(header)} ({",".join(header)})')
            values = []
            for column, text in zip(CSV_COLUMNS, row[:4], strict=True):
                try:
                    values.append(float(text))
                except ValueError:
                    raise RecordingError(
                        f'{path}: line {line_no}: {column} = {text!r} is not a number') from None
            rows.append((values, row[4] if len(row) == 5 else ''))
            lines.append(line_no)
    if header is None:
        raise RecordingError(f'{path}: empty file (no header line)')
    data = np.array([values for values, _ in rows], dtype=np.float64).reshape(-1, 4)
    labels = np.array([label for _, label in rows], dtype=str) if len(header) == 5 else None
    t, acc, labels = _checked(
        data[:, 0], data[:, 1:], labels, str(path), lambda i: f'line {lines[i]}')
    return Recording(t, acc, labels, path.name, where=lambda i: f'line {lines[i]}')


def _load_npz(path: Path) -> Recording:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise RecordingError(f'{path}: not a readable .npz file ({exc})') from None
    missing = [key for key in ('t', 'acc') if key not in arrays]
    if missing:
        raise RecordingError(f'{path}: missing array(s) {", ".join(missing)}')
    unexpected = sorted(set(arrays) - set(NPZ_ARRAYS))
    if unexpected:
        raise RecordingError(
            f'{path}: unexpected array(s) {", ".join(unexpected)}; '
            'expected t, acc and optionally labels')
    t, acc, labels = _checked(
        arrays['t'], arrays['acc'], arrays.get('labels'), str(path), lambda i: f'index {i}')
    return Recording(t, acc, labels, path.name, where=lambda i: f'index {i}')


def _bag_source(path: Path) -> Path:
    """Return what ``rosbags.Reader`` opens: a folder with metadata.yaml or one storage file."""
    if not path.is_dir() or (path / 'metadata.yaml').exists():
        return path
    storage = sorted(p for p in path.iterdir() if p.suffix in ('.mcap', '.db3'))
    if len(storage) != 1:
        raise RecordingError(
            f'{path}: not a rosbag2 folder: no metadata.yaml and {len(storage)} '
            '*.mcap / *.db3 files (need exactly one)')
    return storage[0]


def _load_rosbag(path: Path, imu_topic: str | None, label_topic: str) -> Recording:
    typestore = get_typestore(Stores.ROS2_KILTED)
    try:
        with Reader(_bag_source(path)) as reader:
            topics = {c.topic: c.msgtype for c in reader.connections}
            imu_topics = sorted(topic for topic, kind in topics.items() if kind == IMU_TYPE)
            listed = ', '.join(imu_topics) or 'none'
            if imu_topic is None:
                if len(imu_topics) != 1:
                    raise RecordingError(
                        f'{path}: choose imu_topic, the bag has {len(imu_topics)} '
                        f'{IMU_TYPE} topics: {listed}')
                imu_topic = imu_topics[0]
            elif imu_topic not in imu_topics:
                raise RecordingError(
                    f'{path}: no {IMU_TYPE} topic {imu_topic!r}; Imu topics: {listed}')
            if topics.get(label_topic, STRING_TYPE) != STRING_TYPE:
                raise RecordingError(
                    f'{path}: label topic {label_topic} has type {topics[label_topic]}, '
                    f'expected {STRING_TYPE}')
            wanted = [c for c in reader.connections if c.topic in (imu_topic, label_topic)]
            stamps_ns, acc, label_times, label_texts = [], [], [], []
            for connection, log_ns, raw in reader.messages(connections=wanted):
                msg = typestore.deserialize_cdr(raw, connection.msgtype)
                if connection.topic == label_topic:
                    label_times.append(log_ns)
                    label_texts.append(msg.data)
                    continue
                stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                stamps_ns.append(stamp_ns if stamp_ns != 0 else log_ns)
                a = msg.linear_acceleration
                acc.append((a.x, a.y, a.z))
    except RecordingError:
        raise
    except Exception as exc:  # rosbags raises many types for a bad bag
        raise RecordingError(
            f'{path}: not a readable rosbag2 ({type(exc).__name__}: {exc})') from None
    stamps_ns = np.array(stamps_ns, dtype=np.int64)
    labels = None
    if label_topic in topics:
        order = np.argsort(label_times, kind='stable')
        times = np.array(label_times, dtype=np.int64)[order]
        # Index 0 is '' for the samples before the first label message.
        texts = np.array([''] + [label_texts[i] for i in order])
        labels = texts[np.searchsorted(times, stamps_ns, 'right')]
    t = stamps_ns // 10**9 + (stamps_ns % 10**9) * 1e-9
    t, acc, labels = _checked(
        t, acc, labels, str(path), lambda i: f'message {i} on {imu_topic}')
    return Recording(t, acc, labels, path.name, where=lambda i: f'message {i} on {imu_topic}')


def save_csv(rec: Recording, path) -> None:
    """Write ``rec`` as CSV; floats use ``repr`` so that loading gives the same bits."""
    labelled = rec.labels is not None
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow((*CSV_COLUMNS, 'label') if labelled else CSV_COLUMNS)
        columns = [rec.t.tolist(), *rec.acc.T.tolist()]
        if labelled:
            columns.append(rec.labels.tolist())
        writer.writerows(zip(*columns, strict=True))


def save_npz(rec: Recording, path) -> None:
    """Write ``rec`` as compressed NPZ at exactly ``path`` (numpy adds no suffix to a file)."""
    arrays = {'t': rec.t, 'acc': rec.acc}
    if rec.labels is not None:
        arrays['labels'] = rec.labels
    with open(path, 'wb') as f:
        np.savez_compressed(f, **arrays)


def write_rosbag(rec: Recording, path, *, imu_topic='/imu/data_raw',
                 label_topic='/activity/label', frame_id='imu') -> None:
    """Write ``rec`` as a new rosbag2 folder (MCAP storage, bag format 9, ROS 2 Kilted types).

    Each sample becomes a ``sensor_msgs/msg/Imu`` (stamp = log time = ``t`` rounded
    to the nanosecond, orientation and angular velocity marked absent with
    covariance[0] = -1). With labels, a ``std_msgs/msg/String`` goes on
    ``label_topic`` at every sample whose label differs from the one before (the
    first sample counts if labelled), so ``load_recording`` gives the labels back.
    ``path`` must not exist: like ``ros2 bag record`` this never overwrites.
    """
    path = Path(path)
    if rec.t[0] < 0:
        raise RecordingError(
            f'{path}: t starts at {float(rec.t[0])!r}; ROS time cannot be negative')
    seconds = np.floor(rec.t)
    stamps_ns = seconds.astype(np.int64) * 10**9 + np.round((rec.t - seconds) * 1e9).astype(
        np.int64)
    close = np.diff(stamps_ns) <= 0
    if close.any():
        i = int(np.argmax(close)) + 1
        raise RecordingError(
            f'{path}: samples {i - 1} and {i} are less than 1 ns apart; a bag cannot hold them')
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = typestore.types
    no_covariance = np.zeros(9)
    absent = np.array([-1.0] + [0.0] * 8)
    try:
        with Writer(path, version=Writer.VERSION_LATEST,
                    storage_plugin=StoragePlugin.MCAP) as writer:
            imu = writer.add_connection(imu_topic, IMU_TYPE, typestore=typestore)
            label = None
            if rec.labels is not None:
                label = writer.add_connection(label_topic, STRING_TYPE, typestore=typestore)
            previous = ''
            for i, ns in enumerate(stamps_ns.tolist()):
                if label is not None and rec.labels[i] != previous:
                    previous = str(rec.labels[i])
                    msg = types[STRING_TYPE](data=previous)
                    writer.write(label, ns, typestore.serialize_cdr(msg, STRING_TYPE))
                header = types['std_msgs/msg/Header'](
                    stamp=types['builtin_interfaces/msg/Time'](
                        sec=ns // 10**9, nanosec=ns % 10**9),
                    frame_id=frame_id)
                msg = types[IMU_TYPE](
                    header=header,
                    orientation=types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0),
                    orientation_covariance=absent,
                    angular_velocity=types['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0),
                    angular_velocity_covariance=absent,
                    linear_acceleration=types['geometry_msgs/msg/Vector3'](*rec.acc[i].tolist()),
                    linear_acceleration_covariance=no_covariance)
                writer.write(imu, ns, typestore.serialize_cdr(msg, IMU_TYPE))
    except Exception as exc:  # rosbags raises WriterError, OSError, ...
        raise RecordingError(
            f'{path}: cannot write rosbag2 ({type(exc).__name__}: {exc})') from None


def save_recording(rec: Recording, path) -> None:
    """Write ``rec`` in the format its path names: .csv, .npz, else a rosbag2 folder."""
    suffix = Path(path).suffix.lower()
    if suffix == '.csv':
        save_csv(rec, path)
    elif suffix == '.npz':
        save_npz(rec, path)
    else:
        write_rosbag(rec, path)
