"""``adaptive-perception`` verbs of the activity family: data imu, train, eval, explore, bench.

A bad recording, label or sensor state (ValueError, OSError) is the user's to fix.
"""

import sys
from pathlib import Path

from adaptive_perception.activity.config import ActivityTrainConfig
from adaptive_perception.errors import user_errors
from adaptive_perception.verb_args import config_from_args, dataclass_args


def _common(parser, minutes: float | None) -> None:
    from adaptive_perception.activity.sensor import DEFAULT_MODEL
    if minutes is not None:
        parser.add_argument('--minutes', type=float, default=minutes,
                            help='synthetic minutes per subject')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--noise', type=float, default=DEFAULT_MODEL.single_sample_noise,
                        help='rms noise of one un-averaged low-power sample, m/s^2 '
                             '(sensor model)')


def _recordings_args(parser, what: str) -> None:
    from adaptive_perception.activity.recordings import ACC_UNITS, TIME_UNITS
    parser.add_argument('--recordings', nargs='*', default=[],
                        help=f'labelled recordings (.csv, .npz, rosbag2) {what}')
    parser.add_argument('--labels', help='label mapping file: one "user_label,model_label" '
                                         'per line (e.g. "standing,stand")')
    parser.add_argument('--units', choices=list(ACC_UNITS), default='m/s2',
                        help='unit of the recordings\' acceleration (default m/s2)')
    parser.add_argument('--time-units', choices=list(TIME_UNITS), default='s',
                        help='unit of the recordings\' timestamps (default s)')


def _model_dir_arg(parser) -> None:
    from adaptive_perception.paths import share_dir
    parser.add_argument('--model-dir', default=str(share_dir() / 'models' / 'activity'),
                        help='exported classifier (default: the shipped models/activity)')


def _load_recordings(args) -> list:
    from adaptive_perception.activity.recordings import (
        load_label_map,
        load_recording,
        map_labels,
    )
    mapping = load_label_map(args.labels) if getattr(args, 'labels', None) else {}
    return [map_labels(load_recording(p, units=args.units, time_units=args.time_units),
                       mapping) for p in args.recordings]


class _DataImu:
    group, name = 'data', 'imu'
    help = 'a labelled synthetic accelerometer recording'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--out', required=True, help='.csv, .npz or a rosbag2 folder (.bag)')
        parser.add_argument('--minutes', type=float, default=10.0)
        parser.add_argument('--segment-s', type=float, default=60.0,
                            help='about how long each activity lasts')
        parser.add_argument('--subject', type=int, default=0, help='which synthetic wearer')
        parser.add_argument('--state', default='F100_A128',
                            help='sensor configuration, e.g. F50_A16')
        _common(parser, None)

    def main(self, args) -> int:
        from adaptive_perception.activity.dataset import synthetic_recording
        from adaptive_perception.activity.recordings import save_recording
        from adaptive_perception.activity.sensor import SensorModel, parse_config
        with user_errors(ValueError, OSError):
            recording = synthetic_recording(args.minutes, args.segment_s, args.subject,
                                            args.seed, parse_config(args.state),
                                            SensorModel(args.noise))
            save_recording(recording, Path(args.out))
        print(f'wrote {args.out}: {len(recording)} samples at {recording.rate_hz:g} Hz, '
              f'{len(set(recording.labels))} activities')
        return 0


class _TrainActivity:
    group, name = 'train', 'activity'
    help = 'one IMU activity classifier for all sensor states (exports it too)'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--out', required=True,
                            help='model directory, e.g. models/activity')
        _recordings_args(parser, 'to train on too')
        dataclass_args(parser, ActivityTrainConfig)

    def main(self, args) -> int:
        from adaptive_perception.activity.train import train_activity
        with user_errors(ValueError, OSError):
            train_activity(config_from_args(ActivityTrainConfig, args), Path(args.out),
                           recordings=_load_recordings(args),
                           command=' '.join(['adaptive-perception', *sys.argv[1:]]))
        return 0


class _EvalActivity:
    group, name = 'eval', 'activity'
    help = 'accuracy per sensor state, or on recordings'

    def add_arguments(self, parser) -> None:
        _model_dir_arg(parser)
        _recordings_args(parser, 'to score (default: held-out synthetic wearers)')
        parser.add_argument('--states', nargs='*', default=None,
                            help='sensor states to score at (synthetic default: all 16; '
                                 'recordings default: each at its own rate; a state above a '
                                 'recording\'s rate is named and left out)')
        parser.add_argument('--orientation', choices=['upright', 'random', 'axis'],
                            default='upright',
                            help='how the synthetic wearers hold the device')
        parser.add_argument('--robustness', action='store_true',
                            help='also score upright, random and the 24 axis-aligned '
                                 'orientations at the first --states (default: the top state)')
        parser.add_argument('--out', help='JSON report')
        _common(parser, 8.0)

    def main(self, args) -> int:
        from adaptive_perception.activity.evaluate import run_eval_activity
        with user_errors(ValueError, OSError):
            return run_eval_activity(args.model_dir, _load_recordings(args), args.states,
                                     args.minutes, args.seed, args.noise,
                                     Path(args.out) if args.out else None,
                                     orientation=args.orientation,
                                     robustness=args.robustness)


class _ExploreActivity:
    group, name = 'explore', 'activity'
    help = 'accuracy and current at the 16 sensor configurations; Pareto front'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--out', default='reports/activity_dse', help='folder')
        parser.add_argument('--hidden', type=int, default=64, help='hidden units')
        parser.add_argument('--smoke', action='store_true', help='tiny run for CI')
        _common(parser, 8.0)

    def main(self, args) -> int:
        from adaptive_perception.activity.explore import run_explore
        with user_errors(ValueError, OSError):
            run_explore(Path(args.out), minutes=args.minutes, hidden=args.hidden,
                        seed=args.seed, noise=args.noise, smoke=args.smoke)
        return 0


class _BenchActivity:
    group, name = 'bench', 'activity'
    help = 'SPOT vs every fixed state on the front: accuracy and sensor current, closed loop'

    def add_arguments(self, parser) -> None:
        _model_dir_arg(parser)
        parser.add_argument('--hours', type=float, default=2.0,
                            help='stream length per setting')
        parser.add_argument('--stability-threshold', type=int, default=5)
        parser.add_argument('--confidence-threshold', type=float, default=0.85)
        parser.add_argument('--margin-threshold', type=float, default=0.3,
                            help='margin SPOT: top-1 minus top-2 probability that counts '
                                 'as sure')
        parser.add_argument('--spot-states', nargs='+',
                            help='states the SPOT controllers use, costliest first (default: '
                                 'the model\'s)')
        parser.add_argument('--out', default='reports/bench_activity.json', help='JSON result')
        _common(parser, None)

    def main(self, args) -> int:
        from adaptive_perception.activity.bench import run_bench_activity
        with user_errors(ValueError, OSError):
            return run_bench_activity(args.model_dir, Path(args.out), hours=args.hours,
                                      stability_threshold=args.stability_threshold,
                                      confidence_threshold=args.confidence_threshold,
                                      margin_threshold=args.margin_threshold, seed=args.seed,
                                      noise=args.noise, spot_states=args.spot_states)


VERBS = (_DataImu(), _TrainActivity(), _EvalActivity(), _ExploreActivity(), _BenchActivity())
