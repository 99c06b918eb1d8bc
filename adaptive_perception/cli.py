"""``adaptive-perception``: the command line for work outside ``ros2``.

Sub-commands import their heavy dependencies (rclpy, matplotlib) only when run,
so ``--help`` works anywhere.
"""

import argparse
import json
import runpy
import sys
from pathlib import Path

from adaptive_perception.executables import EXECUTABLES


def _launch(args) -> int:
    from adaptive_perception.launcher.edge import run_edge
    try:
        return run_edge(args.params_file, args.power, args.perception, args.camera,
                        args.duration, Path(args.report_dir), imu=args.imu,
                        detector_model=args.detector_model, camera_source=args.camera_source)
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


def _width_scale(text: str) -> tuple:
    """'0.5=1' -> (0.5, 1.0): a backbone width and the branch scale there."""
    try:
        width, scale = (float(part) for part in text.split('='))
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r}: expected WIDTH=SCALE, e.g. 0.5=1') from None
    return width, scale


def _train_adacon(args) -> int:
    from adaptive_perception.detection.train import train_adacon
    try:
        train_adacon(args.train_annotations, args.train_images, args.val_annotations,
                     args.val_images, Path(args.out), num_clusters=args.clusters,
                     clusters_file=args.clusters_file, seed=args.seed,
                     epochs_static=args.epochs_static, epochs_branches=args.epochs_branches,
                     input_size=args.input_size, head_width=args.head_width,
                     branch_scale=args.branch_scale, smoke=args.smoke,
                     widths=tuple(args.widths), branch_scales=dict(args.branch_scale_at),
                     init_from=args.init_from, stage1_from=args.stage1_from,
                     command=' '.join(sys.argv))
    except ValueError as error:  # settings that do not fit together, or with the data
        raise SystemExit(f'train adacon: {error}') from None
    return 0


def _int8_args(parser, default_frames: int) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument('--checkpoint', help='trained checkpoint to export (FP32 and INT8)')
    where.add_argument('--int8-only', action='store_true',
                       help='add calibrated INT8 graphs to the exported model in --out, '
                            'leaving its FP32 graphs as they are (no checkpoint needed)')
    parser.add_argument('--no-int8', action='store_true', help='write the FP32 graphs only')
    parser.add_argument('--calibration-frames', type=int, default=default_frames,
                        help='training frames the INT8 activation ranges are calibrated on')


def _export_adacon(args) -> int:
    from adaptive_perception.detection.export import add_int8, export_adacon
    try:
        if args.int8_only:
            add_int8(Path(args.out), args.calibration_frames)
        else:
            export_adacon(Path(args.checkpoint), Path(args.out), not args.no_int8,
                          args.calibration_frames)
    except ValueError as error:
        raise SystemExit(f'export adacon: {error}') from None
    return 0


def _export_fastestdet(args) -> int:
    from adaptive_perception.detection.fastestdet.export import export_fastestdet
    try:
        export_fastestdet(Path(args.weights), Path(args.annotations), Path(args.out), args.sizes)
        if args.int8_calibration:
            from adaptive_perception.detection.fastestdet.quantize import quantize_fastestdet
            quantize_fastestdet(Path(args.out), Path(args.int8_calibration), args.int8_count)
    except ValueError as error:
        raise SystemExit(f'export fastestdet: {error}') from None
    return 0


def _is_fastestdet(args) -> bool:
    """Whether ``--model-dir`` is a FastestDet (COCO) folder; a bad folder exits with why."""
    from adaptive_perception.detection.families import FASTESTDET, model_family
    try:
        return model_family(args.model_dir) == FASTESTDET
    except ValueError as error:
        raise SystemExit(f'adaptive-perception: {error}') from None


def _eval_adacon(args) -> int:
    out = Path(args.out) if args.out else None
    try:  # a bad mode or folder: say why, no traceback
        if _is_fastestdet(args):
            from adaptive_perception.detection.fastestdet.bench import run_eval_fastestdet
            return run_eval_fastestdet(args.model_dir, args.annotations, args.images,
                                       args.modes, args.providers, args.threads, out,
                                       args.limit)
        from adaptive_perception.detection.evaluate import run_eval
        return run_eval(args.model_dir, args.annotations, args.images, _adacon_modes(args),
                        args.providers, args.threads, out, args.limit,
                        allow_category_mismatch=args.allow_category_mismatch)
    except ValueError as error:
        raise SystemExit(f'eval adacon: {error}') from None


def _adacon_modes(args) -> list:
    from adaptive_perception.detection.manifest import DEFAULT_MODES
    return list(DEFAULT_MODES) if args.modes is None else args.modes


def _bench_detector(args) -> int:
    if _is_fastestdet(args):
        from adaptive_perception.detection.fastestdet.bench import run_bench_fastestdet
        try:
            return run_bench_fastestdet(args.model_dir, args.annotations, args.images,
                                        args.modes, Path(args.out), frames=args.frames,
                                        providers=args.providers, threads=args.threads,
                                        eval_limit=args.limit,
                                        stream_seconds=args.stream_seconds)
        except ValueError as error:
            raise SystemExit(f'bench detector: {error}') from None
    from adaptive_perception.detection.bench import run_bench_detector
    args.modes = _adacon_modes(args)
    return run_bench_detector(args.model_dir, args.annotations, args.images, args.modes,
                              Path(args.out), frames=args.frames, providers=args.providers,
                              threads=args.threads, eval_limit=args.limit)


def _bench_channels(args) -> int:
    from adaptive_perception.channels.bench import run_bench_channels
    return run_bench_channels(args.model_dir, args.annotations, args.images, args.modes,
                              Path(args.out), frames=args.frames, providers=args.providers,
                              threads=args.threads, eval_limit=args.limit, levels=args.levels,
                              repeats=args.repeats, cascades=not args.no_cascades)


def _bench_gating(args) -> int:
    from adaptive_perception.channels.gating_bench import run_bench_gating
    return run_bench_gating(args.checkpoint, args.model_dir, args.train_annotations,
                            args.train_images, args.annotations, args.images, args.alphas,
                            args.epochs, args.width, frames=args.frames, out_dir=Path(args.out),
                            threads=args.threads, eval_limit=args.limit)


def _data_imu(args) -> int:
    from adaptive_perception.activity.dataset import synthetic_recording
    from adaptive_perception.activity.recordings import save_recording
    from adaptive_perception.activity.sensor import SensorModel, parse_config
    recording = synthetic_recording(args.minutes, args.segment_s, args.subject, args.seed,
                                    parse_config(args.state), SensorModel(args.noise))
    save_recording(recording, Path(args.out))
    print(f'wrote {args.out}: {len(recording)} samples at {recording.rate_hz:g} Hz, '
          f'{len(set(recording.labels))} activities')
    return 0


def _activity_errors(func):
    """Run an activity command; a bad input is one line on stderr and exit 2, no traceback.

    ``--debug`` lets the exception through, traceback and all.
    """
    def run(args) -> int:
        try:
            return func(args)
        except (ValueError, OSError) as error:
            if getattr(args, 'debug', False):
                raise
            command = ' '.join(['adaptive-perception', *args.command_path])
            print(f'{command}: {error}', file=sys.stderr)
            return 2
    return run


def _load_recordings(args) -> list:
    from adaptive_perception.activity.recordings import (
        load_label_map,
        load_recording,
        map_labels,
    )
    mapping = load_label_map(args.labels) if getattr(args, 'labels', None) else {}
    return [map_labels(load_recording(p, units=args.units, time_units=args.time_units),
                       mapping) for p in args.recordings]


@_activity_errors
def _train_activity(args) -> int:
    from adaptive_perception.activity.sensor import parse_config
    from adaptive_perception.activity.train import train_activity
    train_activity(Path(args.out), states=[parse_config(s) for s in args.states],
                   recordings=_load_recordings(args),
                   synthetic=not args.no_synthetic, minutes=args.minutes, hidden=args.hidden,
                   seed=args.seed, noise=args.noise, smoke=args.smoke,
                   new_labels=args.new_labels,
                   command=' '.join(['adaptive-perception', *sys.argv[1:]]))
    return 0


@_activity_errors
def _eval_activity(args) -> int:
    from adaptive_perception.activity.evaluate import run_eval_activity
    return run_eval_activity(args.model_dir, _load_recordings(args), args.states,
                             args.minutes, args.seed, args.noise,
                             Path(args.out) if args.out else None,
                             orientation=args.orientation, robustness=args.robustness)


@_activity_errors
def _explore_activity(args) -> int:
    from adaptive_perception.activity.explore import run_explore
    run_explore(Path(args.out), minutes=args.minutes, hidden=args.hidden, seed=args.seed,
                noise=args.noise, smoke=args.smoke)
    return 0


@_activity_errors
def _bench_activity(args) -> int:
    from adaptive_perception.activity.bench import run_bench_activity
    return run_bench_activity(args.model_dir, Path(args.out), hours=args.hours,
                              stability_threshold=args.stability_threshold,
                              confidence_threshold=args.confidence_threshold,
                              margin_threshold=args.margin_threshold, seed=args.seed,
                              noise=args.noise, spot_states=args.spot_states)


def _activity_common(parser, minutes: float | None) -> None:
    from adaptive_perception.activity.sensor import DEFAULT_MODEL
    if minutes is not None:
        parser.add_argument('--minutes', type=float, default=minutes,
                            help='synthetic minutes per subject')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--noise', type=float, default=DEFAULT_MODEL.single_sample_noise,
                        help='rms noise of one un-averaged low-power sample, m/s^2 '
                             '(sensor model)')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of an error instead of one line')


def _activity_recordings(parser, what: str) -> None:
    from adaptive_perception.activity.recordings import ACC_UNITS, TIME_UNITS
    parser.add_argument('--recordings', nargs='*', default=[],
                        help=f'labelled recordings (.csv, .npz, rosbag2) {what}')
    parser.add_argument('--labels', help='label mapping file: one "user_label,model_label" '
                                         'per line (e.g. "standing,stand")')
    parser.add_argument('--units', choices=list(ACC_UNITS), default='m/s2',
                        help='unit of the recordings\' acceleration (default m/s2)')
    parser.add_argument('--time-units', choices=list(TIME_UNITS), default='s',
                        help='unit of the recordings\' timestamps (default s)')


def _activity_model_dir(parser) -> None:
    from adaptive_perception.paths import share_dir
    parser.add_argument('--model-dir', default=str(share_dir() / 'models' / 'activity'),
                        help='exported classifier (default: the shipped models/activity)')


def _bench_budget(args) -> int:
    from adaptive_perception.budget.bench import run_budget_bench
    return run_budget_bench(args.repeats, Path(args.out))


def _bench_delivery(args) -> int:
    from adaptive_perception.paths import fastdds_profile_file
    from adaptive_perception.ros.delivery_bench import run_bench
    profiles = {'none': [None], 'shipped': [str(fastdds_profile_file())],
                'both': [None, str(fastdds_profile_file())]}[args.profile]
    rows = run_bench(args.seconds, args.qos, profiles, depth=args.depth)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


def _bench_soak(args) -> int:
    from adaptive_perception.launcher.soak import run_soak
    try:
        return run_soak(args.minutes, Path(args.out), args.sample_s, args.warmup_minutes,
                        args.params_file, args.power, args.perception, args.max_slope,
                        args.rate_tolerance)
    except ValueError as error:  # a bad plan or setting: say why, no traceback
        print(f'bench soak: {error}', file=sys.stderr)
        return 2


def _bench_endurance(args) -> int:
    from adaptive_perception.budget.endurance import run_endurance
    try:
        run_endurance(Path(args.out), args.scenarios, args.static_wall_s, args.smoke)
    except (TimeoutError, ValueError) as error:
        raise SystemExit(f'bench endurance: {error}') from None
    return 0


def _coco_pair(parser, split: str) -> None:
    parser.add_argument(f'--{split}-annotations', required=True,
                        help=f'COCO annotation JSON ({split})')
    parser.add_argument(f'--{split}-images', required=True, help=f'image folder ({split})')


def _detector_eval_args(parser, either_family: bool = False) -> None:
    from adaptive_perception.detection.manifest import DEFAULT_MODES
    from adaptive_perception.paths import share_dir
    parser.add_argument('--model-dir', default=str(share_dir() / 'models' / 'adacon'),
                        help='exported model (default: the shipped models/adacon)')
    parser.add_argument('--annotations', required=True, help='COCO annotation JSON')
    parser.add_argument('--images', required=True, help='image folder')
    help_text = ("modes: static, single, multi:<threshold>, each optionally at a backbone "
                 f"width: 'single@0.5' (default: {' '.join(DEFAULT_MODES)})")
    if either_family:
        help_text += '; for a FastestDet (COCO) folder static@<size>[/int8] (default: every graph)'
    parser.add_argument('--modes', nargs='+', default=None if either_family else
                        list(DEFAULT_MODES), help=help_text)
    parser.add_argument('--providers', nargs='+', default=['CPUExecutionProvider'],
                        help='ONNX Runtime execution providers, in order of preference')
    parser.add_argument('--threads', type=int, default=1, help='ONNX Runtime intra-op threads')
    parser.add_argument('--limit', type=int, default=None, help='evaluate the first N images')


def _data_dense(args) -> int:
    from adaptive_perception.multitask.dataset import write_dataset
    out = write_dataset(Path(args.out), args.count, args.seed, args.size)
    print(f'written {args.count} scenes to {out}')
    return 0


def _dense(path, count: int, seed: int, size: int) -> tuple:
    """(DenseArrays, description): a dataset folder, or the generated scenes."""
    from adaptive_perception.multitask.dataset import (
        describe_folder,
        describe_generated,
        generate_dataset_arrays,
        load_dataset,
    )
    if path:
        return load_dataset(Path(path), size), describe_folder(path)
    return generate_dataset_arrays(count, seed, size), describe_generated(count, seed, size)


def _dense_args(parser, split: str, count: int, seed: int) -> None:
    parser.add_argument(f'--{split}', help=f'{split} dataset folder (default: generated scenes)')
    parser.add_argument(f'--{split}-count', type=int, default=count,
                        help='generated scenes (without a folder)')
    parser.add_argument(f'--{split}-seed', type=int, default=seed, help='generator seed')


def _train_adamtl(args) -> int:
    from adaptive_perception.multitask.model import ModelConfig, parse_targets
    from adaptive_perception.multitask.train import Schedule, train_adamtl
    try:
        policies = parse_targets(args.targets)
    except ValueError as error:
        raise SystemExit(f'train adamtl --targets: {error}') from None
    size = ModelConfig.image_size if args.image_size is None else args.image_size
    decoder_dim = ModelConfig.decoder_dim if args.decoder_dim is None else args.decoder_dim
    try:  # before generating any data
        ModelConfig(image_size=size, decoder_dim=decoder_dim)
    except ValueError as error:
        raise SystemExit(f'train adamtl: {error}') from None
    train, train_text = _dense(args.train, args.train_count, args.train_seed, size)
    val, val_text = _dense(args.val, args.val_count, args.val_seed, size)
    schedule = Schedule.smoke() if args.smoke else Schedule(
        static=args.epochs_static, fine_tune=args.epochs_fine_tune,
        alternating_rounds=args.alternating_rounds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    train_adamtl(train, val, out, schedule, seed=args.seed, alpha=args.alpha,
                 skip_rate=args.skip_rate,
                 single_task=not args.no_single_task, jobs=args.jobs,
                 static_from=args.static_from, weights_by=args.efficiency_weights,
                 device=args.device, policies=policies, distill=args.distill,
                 decoder_dim=decoder_dim,
                 train_description=train_text,
                 val_description=val_text,
                 provenance={'command': ' '.join(sys.argv), 'train': train_text,
                             'val': val_text})
    print(f'written {out}')
    return 0


def _train_adamtl_references(args) -> int:
    from adaptive_perception.multitask.train import (
        add_single_task_references,
        add_single_task_references_to_model,
    )
    try:
        if args.model_dir:
            references = add_single_task_references_to_model(args.model_dir, args.device)
        else:
            references = add_single_task_references(args.checkpoint, args.device)
    except ValueError as error:
        raise SystemExit(f'train adamtl-references: {error}') from None
    print(f'single-task references in {args.model_dir or args.checkpoint}: '
          f'{references["single_task"]["scores"]}')
    return 0


def _export_adamtl(args) -> int:
    from adaptive_perception.multitask.export import add_int8, export_adamtl
    try:
        if not args.int8_only:
            export_adamtl(Path(args.checkpoint), Path(args.out), args.references)
        if not args.no_int8:
            add_int8(Path(args.out), args.calibration_frames)
    except ValueError as error:
        raise SystemExit(f'export adamtl: {error}') from None
    print(f'written {args.out}')
    return 0


def _eval_adamtl(args) -> int:
    import json

    from adaptive_perception.multitask.engine import MultiTaskEngine
    from adaptive_perception.multitask.evaluate import evaluate_report
    engine = MultiTaskEngine(args.model_dir, args.providers, args.threads)
    data, text = _dense(args.data, args.data_count, args.data_seed, engine.input_size)
    report = evaluate_report(engine, data, text, args.policies)
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + '\n')
    return 0


def _bench_multitask(args) -> int:
    from adaptive_perception.multitask.bench import run_bench_multitask
    from adaptive_perception.multitask.engine import read_manifest
    try:
        # Scenes are generated at the model's own input size, as eval adamtl does.
        size = int(read_manifest(args.model_dir)['input_size'])
        data, text = _dense(args.data, args.data_count, args.data_seed, size)
        run_bench_multitask(args.model_dir, data, text, Path(args.out), args.checkpoint,
                            args.threads, frames_per_turn=args.frames_per_turn)
    except ValueError as error:
        raise SystemExit(f'bench multitask: {error}') from None
    return 0


def _bench_multitask_widths(args) -> int:
    from adaptive_perception.channels.encoder_widths import run_bench_multitask_widths
    try:
        run_bench_multitask_widths(args.checkpoint, Path(args.out), args.widths, args.epochs,
                                   args.frames, args.threads)
    except ValueError as error:
        raise SystemExit(f'bench multitask-widths: {error}') from None
    return 0


def _multitask_model_dir(parser) -> None:
    from adaptive_perception.paths import share_dir
    parser.add_argument('--model-dir', default=str(share_dir() / 'models' / 'adamtl'),
                        help='exported model (default: the installed models/adamtl)')
    parser.add_argument('--threads', type=int, default=1, help='ONNX Runtime intra-op threads')


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
    launch.add_argument('--imu', choices=['sim', 'none'], default='sim',
                        help='imu_simulator (simulated accelerometer) or none (a real IMU)')
    launch.add_argument('--perception', default='all',
                        help="perception nodes: 'all', 'none' or a comma list of names")
    launch.add_argument('--detector-model', default=None,
                        help="detector model, a name under detector_models in the params "
                             "file: 'scenes' (generated-scenes AdaCon) or 'coco' "
                             "(COCO-pretrained FastestDet); default: scenes with --camera "
                             "sim, coco with --camera none (a real camera)")
    launch.add_argument('--camera-source', default=None,
                        help='what camera_source plays: a folder of photos or a video file '
                             '(default: the params file\'s, the scene generator)')
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
    imu = datasets.add_parser('imu', help='a labelled synthetic accelerometer recording')
    imu.add_argument('--out', required=True, help='.csv, .npz or a rosbag2 folder (.bag)')
    imu.add_argument('--minutes', type=float, default=10.0)
    imu.add_argument('--segment-s', type=float, default=60.0,
                     help='about how long each activity lasts')
    imu.add_argument('--subject', type=int, default=0, help='which synthetic wearer')
    imu.add_argument('--state', default='F100_A128', help='sensor configuration, e.g. F50_A16')
    _activity_common(imu, None)
    imu.set_defaults(func=_data_imu)
    dense = datasets.add_parser('dense', help='dense-prediction scenes for the multi-task '
                                              'model (segmentation, depth, normals, saliency)')
    dense.add_argument('--out', required=True, help='dataset folder (format: README)')
    dense.add_argument('--count', type=int, default=4000, help='number of scenes')
    dense.add_argument('--seed', type=int, default=0)
    dense.add_argument('--size', type=int, default=64, help='image side in pixels')
    dense.set_defaults(func=_data_dense)

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

    train = commands.add_parser('train', help='train a model (no ROS needed)')
    train_models = train.add_subparsers(dest='model', required=True)
    adacon = train_models.add_parser('adacon', help='context-clustered detector, two stages')
    _coco_pair(adacon, 'train')
    _coco_pair(adacon, 'val')
    adacon.add_argument('--out', required=True, help='checkpoint, clusters, training log')
    adacon.add_argument('--clusters', type=int, default=4, help='context branches')
    adacon.add_argument('--clusters-file', help='clusters.json to use instead of clustering')
    adacon.add_argument('--seed', type=int, default=0)
    adacon.add_argument('--epochs-static', type=int, default=30)
    adacon.add_argument('--epochs-branches', type=int, default=30)
    adacon.add_argument('--input-size', type=int, default=128)
    adacon.add_argument('--head-width', type=int, default=192,
                        help='static head width; each branch gets its share of the classes')
    adacon.add_argument('--branch-scale', type=float, default=1.0,
                        help='branch width as a multiple of that share (1: the thesis\'s)')
    adacon.add_argument('--branch-scale-at', type=_width_scale, nargs='+', default=[],
                        metavar='WIDTH=SCALE',
                        help='a smaller branch scale at a backbone width: the branches run '
                             'their first channels there, e.g. 0.5=1')
    adacon.add_argument('--widths', type=float, nargs='+', default=[1.0],
                        help='backbone widths (nested channel sets) trained on shared '
                             'weights, e.g. 1.0 0.75 0.5')
    adacon.add_argument('--init-from', metavar='CHECKPOINT',
                        help='start stage 1 from that checkpoint\'s backbone and static head')
    adacon.add_argument('--stage1-from', metavar='CHECKPOINT',
                        help='take backbone and static head from an earlier run with the same '
                             'data, seed and configuration; train stage 2 only')
    adacon.add_argument('--smoke', action='store_true', help='tiny run for CI')
    adacon.set_defaults(func=_train_adacon)
    activity = train_models.add_parser('activity', help='one IMU activity classifier for all '
                                                        'sensor states (exports it too)')
    activity.add_argument('--out', required=True, help='model directory, e.g. models/activity')
    activity.add_argument('--states', nargs='+',
                          default=['F100_A128', 'F50_A16', 'F12.5_A16', 'F12.5_A8'],
                          help='sensor states to train at, costliest first')
    _activity_recordings(activity, 'to train on too')
    activity.add_argument('--new-labels', action='store_true',
                          help='labels that are not built-in activities (after --labels) '
                               'become new classes; without it they are an error')
    activity.add_argument('--no-synthetic', action='store_true',
                          help='train on the recordings only')
    activity.add_argument('--hidden', type=int, default=64, help='hidden units')
    activity.add_argument('--smoke', action='store_true', help='tiny run for CI')
    _activity_common(activity, 8.0)
    activity.set_defaults(func=_train_activity)
    adamtl = train_models.add_parser('adamtl', help='adaptive multi-task transformer: static, '
                                                    'policy init, co-training; single-task '
                                                    'references')
    _dense_args(adamtl, 'train', 4000, 0)
    _dense_args(adamtl, 'val', 500, 1)
    adamtl.add_argument('--out', required=True, help='checkpoint file (.pt)')
    adamtl.add_argument('--seed', type=int, default=0)
    adamtl.add_argument('--epochs-static', type=int, default=30,
                        help='stage 1 (and each single-task model)')
    adamtl.add_argument('--alternating-rounds', type=int, default=1,
                        help='stage 3a: epochs per task')
    adamtl.add_argument('--epochs-fine-tune', type=int, default=12, help='stage 3b')
    adamtl.add_argument('--alpha', type=float, default=1.0, help='efficiency loss weight')
    adamtl.add_argument('--skip-rate', type=float, default=0.2,
                        help='stage 1: stochastic depth for blocks and tokens')
    adamtl.add_argument('--no-single-task', action='store_true',
                        help='skip the single-task reference models')
    adamtl.add_argument('--static-from', help='reuse stage 1 and the single-task references '
                                              'of an earlier checkpoint (same data/settings)')
    adamtl.add_argument('--jobs', type=int, choices=[1, 2], default=1,
                        help='2: train the single-task models in a second process')
    adamtl.add_argument('--efficiency-weights', choices=['flops', 'width'], default='flops',
                        help="efficiency loss: weigh blocks and tokens by the block's FLOPs, "
                             "or tokens by stage width (the thesis's)")
    adamtl.add_argument('--distill', type=float, default=0.0,
                        help="fine-tuning: weight of the policies' distillation from the "
                             'static model (0: none)')
    adamtl.add_argument('--image-size', type=int,
                        help="input size the model is trained at, in pixels, a multiple "
                             "of 16; scenes are generated (folders resized) to it "
                             "(default: the model's, 64)")
    adamtl.add_argument('--decoder-dim', type=int,
                        help="width of each task decoder, a multiple of 8 "
                             "(default: the model's, 32)")
    adamtl.add_argument('--device', default='cpu', help="torch device, e.g. 'cuda'")
    adamtl.add_argument('--targets', nargs='+', default=[], metavar='POLICY=BLOCKS/TOKENS',
                        help='compute targets, e.g. low=0.7/0.6 (default: the thesis\'s '
                             'H 0.9/0.6 and L 0.5/0.5)')
    adamtl.add_argument('--smoke', action='store_true', help='tiny run for CI')
    adamtl.set_defaults(func=_train_adamtl)
    references = train_models.add_parser(
        'adamtl-references', help="train the single-task references a run skipped "
                                  "(--no-single-task) into its checkpoint or exported "
                                  "model: stage 1's data and recipe; a stopped run goes "
                                  "on where it was")
    where = references.add_mutually_exclusive_group(required=True)
    where.add_argument('--checkpoint',
                       help='an AdaMTL checkpoint or its .stage1.pt (written in place)')
    where.add_argument('--model-dir', help='an exported AdaMTL directory, e.g. models/adamtl '
                                           '(its manifest.json is written in place)')
    references.add_argument('--device', default='cpu', help="torch device, e.g. 'cuda'")
    references.set_defaults(func=_train_adamtl_references)

    export = commands.add_parser('export', help='export a trained model to ONNX')
    export_models = export.add_subparsers(dest='model', required=True)
    adacon = export_models.add_parser('adacon', help='one graph per part (FP32 and INT8) + '
                                                     'manifest.json')
    _int8_args(adacon, 256)
    adacon.add_argument('--out', required=True, help='model directory, e.g. models/adacon')
    adacon.set_defaults(func=_export_adacon)
    fastestdet = export_models.add_parser(
        'fastestdet', help='the COCO-pretrained FastestDet weights: one graph per input '
                           'size + manifest.json')
    fastestdet.add_argument('--weights', required=True,
                            help="upstream's state dict, e.g. "
                                 "../shared/vendor/fastestdet/fastestdet_coco80.pth")
    fastestdet.add_argument('--annotations', required=True,
                            help='a COCO annotation JSON: category ids and names')
    fastestdet.add_argument('--sizes', type=int, nargs='+', default=[352, 288, 224, 160],
                            help='square input sizes, multiples of 32: one graph each')
    fastestdet.add_argument('--int8-calibration', metavar='IMAGES',
                            help='also write an INT8 copy of every graph (static '
                                 'quantization), calibrated on photos of this folder')
    fastestdet.add_argument('--int8-count', type=int, default=32,
                            help='calibration photos: the last N of the folder by name')
    fastestdet.add_argument('--out', required=True,
                            help='model directory, e.g. models/coco_fastestdet')
    fastestdet.set_defaults(func=_export_fastestdet)
    adamtl = export_models.add_parser('adamtl', help='one encoder graph per policy, the '
                                                     'decoders (FP32 and INT8) + manifest.json')
    _int8_args(adamtl, 128)
    adamtl.add_argument('--out', required=True, help='model directory, e.g. models/adamtl')
    adamtl.add_argument('--references', help='take the single-task references from this '
                                             'checkpoint (same stage 1, e.g. the run '
                                             'that --static-from reused)')
    adamtl.set_defaults(func=_export_adamtl)

    evaluate = commands.add_parser('eval', help='score an exported model')
    eval_models = evaluate.add_subparsers(dest='model', required=True)
    adacon = eval_models.add_parser('adacon', help='COCO mAP per mode, controller accuracy '
                                                   '(either detector family)')
    _detector_eval_args(adacon, either_family=True)
    adacon.add_argument('--out', help='JSON report')
    adacon.add_argument('--allow-category-mismatch', action='store_true',
                        help="score a dataset whose category ids/names are not the model's "
                             '(refused by default)')
    adacon.set_defaults(func=_eval_adacon)
    activity = eval_models.add_parser('activity', help='accuracy per sensor state, or on '
                                                       'recordings')
    _activity_model_dir(activity)
    _activity_recordings(activity, 'to score (default: held-out synthetic wearers)')
    activity.add_argument('--states', nargs='*', default=None,
                          help='sensor states to score at (synthetic default: all 16; '
                               'recordings default: each at its own rate; a state above a '
                               'recording\'s rate is named and left out)')
    activity.add_argument('--orientation', choices=['upright', 'random', 'axis'],
                          default='upright', help='how the synthetic wearers hold the device')
    activity.add_argument('--robustness', action='store_true',
                          help='also score upright, random and the 24 axis-aligned '
                               'orientations at the first --states (default: the top state)')
    activity.add_argument('--out', help='JSON report')
    _activity_common(activity, 8.0)
    activity.set_defaults(func=_eval_activity)
    adamtl = eval_models.add_parser('adamtl', help='per task and policy: mIoU, depth RMSE, '
                                                   'normals error, saliency maxF, delta_m')
    _multitask_model_dir(adamtl)
    _dense_args(adamtl, 'data', 500, 1)
    adamtl.add_argument('--policies', nargs='+', default=None,
                        help='policies to score (default: all in the model)')
    adamtl.add_argument('--providers', nargs='+', default=['CPUExecutionProvider'],
                        help='ONNX Runtime execution providers, in order of preference')
    adamtl.add_argument('--out', help='JSON report')
    adamtl.set_defaults(func=_eval_adamtl)

    explore = commands.add_parser('explore', help='design-space exploration')
    explore_models = explore.add_subparsers(dest='model', required=True)
    activity = explore_models.add_parser('activity', help='accuracy and current at the 16 '
                                                          'sensor configurations; Pareto front')
    activity.add_argument('--out', default='reports/activity_dse', help='folder')
    activity.add_argument('--hidden', type=int, default=64, help='hidden units')
    activity.add_argument('--smoke', action='store_true', help='tiny run for CI')
    _activity_common(activity, 8.0)
    activity.set_defaults(func=_explore_activity)

    bench = commands.add_parser('bench', help='measure against the targets')
    targets = bench.add_subparsers(dest='target', required=True)
    delivery = targets.add_parser('delivery', help='camera-sized frames between two processes: '
                                                   'delivered/published per size and QoS')
    delivery.add_argument('--seconds', type=float, default=4.0, help='publishing time per run')
    delivery.add_argument('--qos', nargs='+', default=['sensor_data', 'reliable'],
                          choices=['sensor_data', 'reliable'])
    delivery.add_argument('--profile', choices=['none', 'shipped', 'both'], default='both',
                          help='Fast DDS defaults, the shipped large-data profile, or both')
    delivery.add_argument('--depth', type=int, default=10,
                          help="subscriber queue (the nodes keep 1: newest frame wins)")
    delivery.add_argument('--out', default='reports/bench_delivery.json', help='JSON rows')
    delivery.set_defaults(func=_bench_delivery)
    detector = targets.add_parser('detector', help='mAP, MACs, node latency per mode')
    _detector_eval_args(detector, either_family=True)
    detector.add_argument('--frames', type=int, default=50, help='images timed per mode')
    detector.add_argument('--stream-seconds', type=float, default=0.0,
                          help='FastestDet folder: also stream 640x480 frames at 15 Hz over '
                               'DDS into a detector process, this long per level (frames '
                               'lost, end-to-end latency)')
    detector.add_argument('--out', default='reports/bench_detector', help='folder')
    detector.set_defaults(func=_bench_detector)
    channels = targets.add_parser('channels', help='every width x mode: mAP, MACs, latency; '
                                                   'latency model, Pareto front, level profile')
    _detector_eval_args(channels)
    channels.add_argument('--frames', type=int, default=50, help='images timed per point')
    channels.add_argument('--repeats', type=int, default=3, help='times each image is timed')
    channels.add_argument('--no-cascades', action='store_true',
                          help='leave the exit cascades out (width x mode x precision only)')
    channels.add_argument('--levels', type=int, default=4,
                          help='execution levels to propose a profile for')
    channels.add_argument('--out', default='reports/bench_channels', help='folder')
    channels.set_defaults(func=_bench_channels)
    gating = targets.add_parser('gating', help='per-input channel skipping of the static head: '
                                               'mechanism overhead, trained gates vs dense')
    _detector_eval_args(gating)
    gating.add_argument('--checkpoint', required=True,
                        help='the AdaCon checkpoint --model-dir was exported from')
    _coco_pair(gating, 'train')
    gating.add_argument('--alphas', type=float, nargs='+', default=[0.1, 1.0],
                        help='cost weights to train a gate with')
    gating.add_argument('--epochs', type=int, default=6, help='gate training epochs')
    gating.add_argument('--width', type=float, default=1.0, help='backbone width')
    gating.add_argument('--frames', type=int, default=50, help='images timed')
    gating.add_argument('--out', default='reports/bench_gating', help='folder')
    gating.set_defaults(func=_bench_gating)
    budget = targets.add_parser('budget', help='level-change latency and apply cost, '
                                               'across processes')
    budget.add_argument('--repeats', type=int, default=40, help='threshold crossings to time')
    budget.add_argument('--out', default='reports/bench_budget.json', help='JSON result')
    budget.set_defaults(func=_bench_budget)
    soak = targets.add_parser('soak', help='the edge pipeline for N minutes: memory slope, '
                                           'CPU, rate, latency, drops and exits per node')
    soak.add_argument('--minutes', type=float, default=30.0, help='how long to run')
    soak.add_argument('--sample-s', type=float, default=60.0,
                      help='seconds between samples (shorter for a short run)')
    soak.add_argument('--warmup-minutes', type=float, default=5.0,
                      help='memory is fitted after this much time')
    soak.add_argument('--params-file', help='nodes and parameters (default: config/edge.yaml)')
    soak.add_argument('--power', choices=['sim', 'real', 'none'], default='sim')
    soak.add_argument('--perception', default='all', help="'all', 'none' or a comma list")
    soak.add_argument('--max-slope', type=float, default=0.1,
                      help='target: memory slope after the warm-up, MB/minute')
    soak.add_argument('--rate-tolerance', type=float, default=0.05,
                      help='target: camera-fed nodes within this fraction of the camera rate')
    soak.add_argument('--out', default='reports/bench_soak', help='folder')
    soak.set_defaults(func=_bench_soak)
    endurance = targets.add_parser('endurance', help='static vs threshold vs mission policy: '
                                                     'battery life and quality, closed loop')
    endurance.add_argument('--scenarios', nargs='+', default=['heavy', 'light'],
                           choices=['heavy', 'light'], help='which scenarios')
    endurance.add_argument('--static-wall-s', type=float, default=40.0,
                           help='wall seconds a static run should take (sets the time scale)')
    endurance.add_argument('--smoke', action='store_true',
                           help='a few seconds per run, static and mission only (CI)')
    endurance.add_argument('--out', default='reports/bench_endurance', help='folder')
    endurance.set_defaults(func=_bench_endurance)
    activity = targets.add_parser('activity', help='SPOT vs every fixed state on the front: '
                                                   'accuracy and sensor current, closed loop')
    _activity_model_dir(activity)
    activity.add_argument('--hours', type=float, default=2.0, help='stream length per setting')
    activity.add_argument('--stability-threshold', type=int, default=5)
    activity.add_argument('--confidence-threshold', type=float, default=0.85)
    activity.add_argument('--margin-threshold', type=float, default=0.3,
                          help='margin SPOT: top-1 minus top-2 probability that counts as sure')
    activity.add_argument('--spot-states', nargs='+',
                          help='states the SPOT controllers use, costliest first (default: '
                               'the model\'s)')
    activity.add_argument('--out', default='reports/bench_activity.json', help='JSON result')
    _activity_common(activity, None)
    activity.set_defaults(func=_bench_activity)
    multitask = targets.add_parser('multitask', help='AdaMTL policies vs static: scores, '
                                                     'delta_m, FLOPs, latency, histogram')
    _multitask_model_dir(multitask)
    _dense_args(multitask, 'data', 500, 1)
    multitask.add_argument('--checkpoint', help='also time the PyTorch model (runtime choice)')
    multitask.add_argument('--frames-per-turn', type=int,
                           help='consecutive frames each configuration runs in its turn '
                                '(default 20)')
    multitask.add_argument('--out', default='reports/bench_multitask', help='folder')
    multitask.set_defaults(func=_bench_multitask)
    widths = targets.add_parser('multitask-widths', help='channel sets on the AdaMTL encoder: '
                                                         'each width trained, scored, timed')
    widths.add_argument('--checkpoint', required=True,
                        help='AdaMTL checkpoint (or .stage1.pt) whose stage 1 is the full '
                             'width; its recorded data are used again')
    widths.add_argument('--widths', type=float, nargs='+', default=[0.75, 0.5])
    widths.add_argument('--epochs', type=int, help='default: the checkpoint\'s stage 1')
    widths.add_argument('--frames', type=int, default=300, help='frames timed')
    widths.add_argument('--threads', type=int, default=1, help='ONNX Runtime intra-op threads')
    widths.add_argument('--out', default='reports/bench_multitask_widths', help='folder')
    widths.set_defaults(func=_bench_multitask_widths)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``adaptive-perception`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_path = [a for a in argv[:2] if not a.startswith('-')]
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C before a command set up its own handling
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    raise SystemExit(main())
