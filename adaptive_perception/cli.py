"""``adaptive-perception``: the command line for work outside ``ros2``.

Sub-commands import their heavy dependencies (rclpy, matplotlib) only when run,
so ``--help`` works anywhere.
"""

import argparse
import runpy
import sys
from pathlib import Path

from adaptive_perception.executables import EXECUTABLES


def _launch(args) -> int:
    from adaptive_perception.launcher.edge import run_edge
    try:
        return run_edge(args.params_file, args.power, args.perception, args.camera,
                        args.duration, Path(args.report_dir))
    except ValueError as error:  # a bad plan or argument: say why, no traceback
        print(f'adaptive-perception launch: {error}', file=sys.stderr)
        return 2


def _run(args) -> int:
    sys.argv = [args.executable, *args.ros_args]
    runpy.run_module(EXECUTABLES[args.executable], run_name='__main__')
    return 0


def _data_scenes(args) -> int:
    from adaptive_perception.detection.scenes import run_generate
    run_generate(Path(args.out), args.images, args.seed, args.size)
    return 0


def _cluster(args) -> int:
    from adaptive_perception.detection.clustering import run_cluster
    run_cluster(args.annotations, args.clusters, Path(args.out), args.common_min_count,
                args.common_share, args.seed)
    return 0


def _bench_budget(args) -> int:
    from adaptive_perception.budget.bench import run_budget_bench
    return run_budget_bench(args.repeats, Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (also used by the tests)."""
    parser = argparse.ArgumentParser(prog='adaptive-perception', description=__doc__.split(
        '\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)

    launch = commands.add_parser('launch', help='start a pipeline (what ros2 launch starts)')
    launch.add_argument('pipeline', choices=['edge'])
    launch.add_argument('--params-file', help='nodes and parameters (default: config/edge.yaml)')
    launch.add_argument('--power', choices=['sim', 'real', 'none'], default='sim',
                        help='simulated battery/thermal, Linux sysfs, or none (default sim)')
    launch.add_argument('--camera', choices=['sim', 'none'], default='sim',
                        help='camera_source (generated scenes) or none (a real camera)')
    launch.add_argument('--perception', default='all',
                        help="perception nodes: 'all', 'none' or a comma list of names")
    launch.add_argument('--duration', type=float, default=None,
                        help='stop after this many seconds (default: run until Ctrl-C)')
    launch.add_argument('--report-dir', default='reports/edge',
                        help='where logs and the report go (default reports/edge)')
    launch.set_defaults(func=_launch)

    run = commands.add_parser('run', help='run one node (what ros2 run starts)')
    run.add_argument('executable', choices=sorted(EXECUTABLES))
    run.add_argument('ros_args', nargs=argparse.REMAINDER, help='e.g. --ros-args -p name:=value')
    run.set_defaults(func=_run)

    data = commands.add_parser('data', help='generate the embedded datasets')
    datasets = data.add_subparsers(dest='dataset', required=True)
    scenes = datasets.add_parser('scenes', help='context scenes for the detector (COCO format)')
    scenes.add_argument('--out', required=True, help='folder: images/ + annotations.json')
    scenes.add_argument('--images', type=int, default=3000, help='number of images')
    scenes.add_argument('--seed', type=int, default=0)
    scenes.add_argument('--size', type=int, default=128, help='image side in pixels')
    scenes.set_defaults(func=_data_scenes)

    cluster = commands.add_parser('cluster', help='spatial-context clustering of COCO classes')
    cluster.add_argument('--annotations', required=True, help='COCO annotation JSON')
    cluster.add_argument('--clusters', type=int, default=4, help='number of context clusters')
    cluster.add_argument('--out', required=True, help='folder for clusters.json + graph PNG')
    cluster.add_argument('--common-min-count', type=int, default=None,
                         help='co-occurrence count that links two classes (default: 2%% '
                              'of the images)')
    cluster.add_argument('--common-share', type=float, default=0.75,
                         help='a class linked to more than this share of the others is common')
    cluster.add_argument('--seed', type=int, default=0, help='layout seed')
    cluster.set_defaults(func=_cluster)

    bench = commands.add_parser('bench', help='measure against the targets')
    targets = bench.add_subparsers(dest='target', required=True)
    budget = targets.add_parser('budget', help='level-change latency and apply cost, '
                                               'across processes')
    budget.add_argument('--repeats', type=int, default=40, help='threshold crossings to time')
    budget.add_argument('--out', default='reports/bench_budget.json', help='JSON result')
    budget.set_defaults(func=_bench_budget)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``adaptive-perception`` command."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    raise SystemExit(main())
