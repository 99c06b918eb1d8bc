"""``adaptive-perception`` verbs of the detector family (AdaCon, FastestDet).

data scenes, cluster, train/export/eval adacon, export fastestdet, bench detector.
"""

import sys
from pathlib import Path

from adaptive_perception.detection.config import AdaconTrainConfig
from adaptive_perception.errors import user_errors
from adaptive_perception.verb_args import config_from_args, dataclass_args, int8_args


def coco_pair_args(parser, split: str) -> None:
    """Add ``--<split>-annotations`` and ``--<split>-images`` (a COCO set)."""
    parser.add_argument(f'--{split}-annotations', required=True,
                        help=f'COCO annotation JSON ({split})')
    parser.add_argument(f'--{split}-images', required=True, help=f'image folder ({split})')


def eval_args(parser, either_family: bool = False) -> None:
    """Add the options every detector eval and bench takes: model, COCO set, modes, runtime."""
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


def _is_fastestdet(args) -> bool:
    """Whether ``--model-dir`` is a FastestDet (COCO) folder; a bad folder is a UserError."""
    from adaptive_perception.detection.families import FASTESTDET, model_family
    with user_errors():
        return model_family(args.model_dir) == FASTESTDET


def _adacon_modes(args) -> list[str]:
    from adaptive_perception.detection.manifest import DEFAULT_MODES
    return list(DEFAULT_MODES) if args.modes is None else args.modes


class _DataScenes:
    group, name = 'data', 'scenes'
    help = 'context scenes for the detector (COCO format)'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--out', required=True, help='folder: images/ + annotations.json')
        parser.add_argument('--images', type=int, default=3000, help='number of images')
        parser.add_argument('--seed', type=int, default=0)
        parser.add_argument('--size', type=int, default=128, help='image side in pixels')

    def main(self, args) -> int:
        from adaptive_perception.detection.scenes import run_generate
        run_generate(Path(args.out), args.images, args.seed, args.size)
        return 0


class _Cluster:
    group, name = None, 'cluster'
    help = 'spatial-context clustering of COCO classes'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--annotations', required=True, help='COCO annotation JSON')
        parser.add_argument('--clusters', type=int, default=4,
                            help='number of context clusters')
        parser.add_argument('--out', required=True, help='folder for clusters.json + graph PNG')
        parser.add_argument('--common-min-count', type=int, default=None,
                            help='co-occurrence count that links two classes (default: 2%% '
                                 'of the images)')
        parser.add_argument('--common-share', type=float, default=0.75,
                            help='a class linked to more than this share of the others is '
                                 'common')
        parser.add_argument('--seed', type=int, default=0, help='layout seed')

    def main(self, args) -> int:
        from adaptive_perception.detection.clustering import run_cluster
        run_cluster(args.annotations, args.clusters, Path(args.out), args.common_min_count,
                    args.common_share, args.seed)
        return 0


class _TrainAdacon:
    group, name = 'train', 'adacon'
    help = 'context-clustered detector, two stages'

    def add_arguments(self, parser) -> None:
        coco_pair_args(parser, 'train')
        coco_pair_args(parser, 'val')
        parser.add_argument('--out', required=True, help='checkpoint, clusters, training log')
        dataclass_args(parser, AdaconTrainConfig)
        parser.add_argument('--clusters-file',
                            help='clusters.json to use instead of clustering')
        parser.add_argument('--init-from', metavar='CHECKPOINT',
                            help='start stage 1 from that checkpoint\'s backbone and static '
                                 'head')
        parser.add_argument('--stage1-from', metavar='CHECKPOINT',
                            help='take backbone and static head from an earlier run with the '
                                 'same data, seed and configuration; train stage 2 only')

    def main(self, args) -> int:
        from adaptive_perception.detection.train import train_adacon
        with user_errors():  # settings that do not fit together, or with the data
            train_adacon(config_from_args(AdaconTrainConfig, args), args.train_annotations,
                         args.train_images, args.val_annotations, args.val_images,
                         Path(args.out), clusters_file=args.clusters_file,
                         init_from=args.init_from, stage1_from=args.stage1_from,
                         command=' '.join(sys.argv))
        return 0


class _ExportAdacon:
    group, name = 'export', 'adacon'
    help = 'one graph per part (FP32 and INT8) + manifest.json'

    def add_arguments(self, parser) -> None:
        int8_args(parser, 256)
        parser.add_argument('--out', required=True, help='model directory, e.g. models/adacon')

    def main(self, args) -> int:
        from adaptive_perception.detection.export import add_int8, export_adacon
        with user_errors():
            if args.int8_only:
                add_int8(Path(args.out), args.calibration_frames)
            else:
                export_adacon(Path(args.checkpoint), Path(args.out), not args.no_int8,
                              args.calibration_frames)
        return 0


class _ExportFastestdet:
    group, name = 'export', 'fastestdet'
    help = 'the COCO-pretrained FastestDet weights: one graph per input size + manifest.json'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--weights', required=True,
                            help="upstream's state dict, e.g. "
                                 "../shared/vendor/fastestdet/fastestdet_coco80.pth")
        parser.add_argument('--annotations', required=True,
                            help='a COCO annotation JSON: category ids and names')
        parser.add_argument('--sizes', type=int, nargs='+', default=[352, 288, 224, 160],
                            help='square input sizes, multiples of 32: one graph each')
        parser.add_argument('--int8-calibration', metavar='IMAGES',
                            help='also write an INT8 copy of every graph (static '
                                 'quantization), calibrated on photos of this folder')
        parser.add_argument('--int8-count', type=int, default=32,
                            help='calibration photos: the last N of the folder by name')
        parser.add_argument('--out', required=True,
                            help='model directory, e.g. models/coco_fastestdet')

    def main(self, args) -> int:
        from adaptive_perception.detection.fastestdet.export import export_fastestdet
        with user_errors():
            export_fastestdet(Path(args.weights), Path(args.annotations), Path(args.out),
                              args.sizes)
            if args.int8_calibration:
                from adaptive_perception.detection.fastestdet.quantize import (
                    quantize_fastestdet,
                )
                quantize_fastestdet(Path(args.out), Path(args.int8_calibration),
                                    args.int8_count)
        return 0


class _EvalAdacon:
    group, name = 'eval', 'adacon'
    help = 'COCO mAP per mode, controller accuracy (either detector family)'

    def add_arguments(self, parser) -> None:
        eval_args(parser, either_family=True)
        parser.add_argument('--out', help='JSON report')
        parser.add_argument('--allow-category-mismatch', action='store_true',
                            help="score a dataset whose category ids/names are not the "
                                 "model's (refused by default)")

    def main(self, args) -> int:
        out = Path(args.out) if args.out else None
        with user_errors():  # a bad mode or folder
            if _is_fastestdet(args):
                from adaptive_perception.detection.fastestdet.bench import run_eval_fastestdet
                return run_eval_fastestdet(args.model_dir, args.annotations, args.images,
                                           args.modes, args.providers, args.threads, out,
                                           args.limit)
            from adaptive_perception.detection.evaluate import run_eval
            return run_eval(args.model_dir, args.annotations, args.images,
                            _adacon_modes(args), args.providers, args.threads, out, args.limit,
                            allow_category_mismatch=args.allow_category_mismatch)


class _BenchDetector:
    group, name = 'bench', 'detector'
    help = 'mAP, MACs, node latency per mode'

    def add_arguments(self, parser) -> None:
        eval_args(parser, either_family=True)
        parser.add_argument('--frames', type=int, default=50, help='images timed per mode')
        parser.add_argument('--stream-seconds', type=float, default=0.0,
                            help='FastestDet folder: also stream 640x480 frames at 15 Hz over '
                                 'DDS into a detector process, this long per level (frames '
                                 'lost, end-to-end latency)')
        parser.add_argument('--out', default='reports/bench_detector', help='folder')

    def main(self, args) -> int:
        if _is_fastestdet(args):
            from adaptive_perception.detection.fastestdet.bench import run_bench_fastestdet
            with user_errors():
                return run_bench_fastestdet(args.model_dir, args.annotations, args.images,
                                            args.modes, Path(args.out), frames=args.frames,
                                            providers=args.providers, threads=args.threads,
                                            eval_limit=args.limit,
                                            stream_seconds=args.stream_seconds)
        from adaptive_perception.detection.bench import run_bench_detector
        args.modes = _adacon_modes(args)
        return run_bench_detector(args.model_dir, args.annotations, args.images, args.modes,
                                  Path(args.out), frames=args.frames, providers=args.providers,
                                  threads=args.threads, eval_limit=args.limit)


VERBS = (_DataScenes(), _Cluster(), _TrainAdacon(), _ExportAdacon(), _ExportFastestdet(),
         _EvalAdacon(), _BenchDetector())
