"""``adaptive-perception`` verbs of the launcher: launch, run, bench soak, bench delivery."""

import argparse
import json
import runpy
import sys
from pathlib import Path

from adaptive_perception.errors import user_errors
from adaptive_perception.executables import EXECUTABLES


class _Launch:
    group, name = None, 'launch'
    help = 'start a pipeline (what ros2 launch starts)'

    def add_arguments(self, parser) -> None:
        parser.add_argument('pipeline', choices=['edge'])
        parser.add_argument('--params-file',
                            help='nodes and parameters (default: config/edge.yaml)')
        parser.add_argument('--power', choices=['sim', 'real', 'none'], default='sim',
                            help='simulated battery/thermal, Linux sysfs, or none (default sim)')
        parser.add_argument('--camera', choices=['sim', 'none'], default='sim',
                            help='camera_source (generated scenes) or none (a real camera)')
        parser.add_argument('--imu', choices=['sim', 'none'], default='sim',
                            help='imu_simulator (simulated accelerometer) or none (a real IMU)')
        parser.add_argument('--perception', default='all',
                            help="perception nodes: 'all', 'none' or a comma list of names")
        parser.add_argument('--detector-model', default=None,
                            help="detector model, a name under detector_models in the params "
                                 "file: 'scenes' (generated-scenes AdaCon) or 'coco' "
                                 "(COCO-pretrained FastestDet); default: scenes with --camera "
                                 "sim, coco with --camera none (a real camera)")
        parser.add_argument('--camera-source', default=None,
                            help='what camera_source plays: a folder of photos or a video file '
                                 '(default: the params file\'s, the scene generator)')
        parser.add_argument('--duration', type=float, default=None,
                            help='stop after this many seconds (default: run until Ctrl-C)')
        parser.add_argument('--report-dir', default='reports/edge',
                            help='where logs and the report go (default reports/edge)')

    def main(self, args) -> int:
        from adaptive_perception.launcher.edge import run_edge
        with user_errors():  # a bad plan or argument
            return run_edge(args.params_file, args.power, args.perception, args.camera,
                            args.duration, Path(args.report_dir), imu=args.imu,
                            detector_model=args.detector_model,
                            camera_source=args.camera_source)


class _Run:
    group, name = None, 'run'
    help = 'run one node (what ros2 run starts)'

    def add_arguments(self, parser) -> None:
        parser.add_argument('executable', choices=sorted(EXECUTABLES))
        parser.add_argument('ros_args', nargs=argparse.REMAINDER,
                            help='e.g. --ros-args -p name:=value')

    def main(self, args) -> int:
        sys.argv = [args.executable, *args.ros_args]
        runpy.run_module(EXECUTABLES[args.executable], run_name='__main__')
        return 0


class _BenchSoak:
    group, name = 'bench', 'soak'
    help = 'the edge pipeline for N minutes: memory slope, CPU, rate, latency, drops and exits ' \
           'per node'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--minutes', type=float, default=30.0, help='how long to run')
        parser.add_argument('--sample-s', type=float, default=60.0,
                            help='seconds between samples (shorter for a short run)')
        parser.add_argument('--warmup-minutes', type=float, default=5.0,
                            help='memory is fitted after this much time')
        parser.add_argument('--params-file',
                            help='nodes and parameters (default: config/edge.yaml)')
        parser.add_argument('--power', choices=['sim', 'real', 'none'], default='sim')
        parser.add_argument('--perception', default='all',
                            help="'all', 'none' or a comma list")
        parser.add_argument('--max-slope', type=float, default=0.1,
                            help='target: memory slope after the warm-up, MB/minute')
        parser.add_argument('--rate-tolerance', type=float, default=0.05,
                            help='target: camera-fed nodes within this fraction of the '
                                 'camera rate')
        parser.add_argument('--out', default='reports/bench_soak', help='folder')

    def main(self, args) -> int:
        from adaptive_perception.launcher.soak import run_soak
        with user_errors():  # a bad plan or setting
            return run_soak(args.minutes, Path(args.out), args.sample_s, args.warmup_minutes,
                            args.params_file, args.power, args.perception, args.max_slope,
                            args.rate_tolerance)


class _BenchDelivery:
    group, name = 'bench', 'delivery'
    help = 'camera-sized frames between two processes: delivered/published per size and QoS'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--seconds', type=float, default=4.0,
                            help='publishing time per run')
        parser.add_argument('--qos', nargs='+', default=['sensor_data', 'reliable'],
                            choices=['sensor_data', 'reliable'])
        parser.add_argument('--profile', choices=['none', 'shipped', 'both'], default='both',
                            help='Fast DDS defaults, the shipped large-data profile, or both')
        parser.add_argument('--depth', type=int, default=10,
                            help="subscriber queue (the nodes keep 1: newest frame wins)")
        parser.add_argument('--out', default='reports/bench_delivery.json', help='JSON rows')

    def main(self, args) -> int:
        from adaptive_perception.paths import fastdds_profile_file
        from adaptive_perception.ros.delivery_bench import run_bench
        profiles = {'none': [None], 'shipped': [str(fastdds_profile_file())],
                    'both': [None, str(fastdds_profile_file())]}[args.profile]
        rows = run_bench(args.seconds, args.qos, profiles, depth=args.depth)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(rows, indent=2))
        return 0


VERBS = (_Launch(), _Run(), _BenchSoak(), _BenchDelivery())
