"""``adaptive-perception`` verbs of the channel-set studies (on the detector and AdaMTL).

bench channels, bench gating, bench multitask-widths. They live here, not in the
detector's or AdaMTL's verbs, because ``channels`` builds on both families and neither
may import it.
"""

from pathlib import Path

from adaptive_perception.detection.cli import coco_pair_args, eval_args
from adaptive_perception.errors import user_errors


class _BenchChannels:
    group, name = 'bench', 'channels'
    help = 'every width x mode: mAP, MACs, latency; latency model, Pareto front, level profile'

    def add_arguments(self, parser) -> None:
        eval_args(parser)
        parser.add_argument('--frames', type=int, default=50, help='images timed per point')
        parser.add_argument('--repeats', type=int, default=3,
                            help='times each image is timed')
        parser.add_argument('--no-cascades', action='store_true',
                            help='leave the exit cascades out (width x mode x precision only)')
        parser.add_argument('--levels', type=int, default=4,
                            help='execution levels to propose a profile for')
        parser.add_argument('--out', default='reports/bench_channels', help='folder')

    def main(self, args) -> int:
        from adaptive_perception.channels.bench import run_bench_channels
        return run_bench_channels(args.model_dir, args.annotations, args.images, args.modes,
                                  Path(args.out), frames=args.frames, providers=args.providers,
                                  threads=args.threads, eval_limit=args.limit,
                                  levels=args.levels, repeats=args.repeats,
                                  cascades=not args.no_cascades)


class _BenchGating:
    group, name = 'bench', 'gating'
    help = 'per-input channel skipping of the static head: mechanism overhead, trained gates ' \
           'vs dense'

    def add_arguments(self, parser) -> None:
        eval_args(parser)
        parser.add_argument('--checkpoint', required=True,
                            help='the AdaCon checkpoint --model-dir was exported from')
        coco_pair_args(parser, 'train')
        parser.add_argument('--alphas', type=float, nargs='+', default=[0.1, 1.0],
                            help='cost weights to train a gate with')
        parser.add_argument('--epochs', type=int, default=6, help='gate training epochs')
        parser.add_argument('--width', type=float, default=1.0, help='backbone width')
        parser.add_argument('--frames', type=int, default=50, help='images timed')
        parser.add_argument('--out', default='reports/bench_gating', help='folder')

    def main(self, args) -> int:
        from adaptive_perception.channels.gating_bench import run_bench_gating
        return run_bench_gating(args.checkpoint, args.model_dir, args.train_annotations,
                                args.train_images, args.annotations, args.images, args.alphas,
                                args.epochs, args.width, frames=args.frames,
                                out_dir=Path(args.out), threads=args.threads,
                                eval_limit=args.limit)


class _BenchMultitaskWidths:
    group, name = 'bench', 'multitask-widths'
    help = 'channel sets on the AdaMTL encoder: each width trained, scored, timed'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--checkpoint', required=True,
                            help='AdaMTL checkpoint (or .stage1.pt) whose stage 1 is the full '
                                 'width; its recorded data are used again')
        parser.add_argument('--widths', type=float, nargs='+', default=[0.75, 0.5])
        parser.add_argument('--epochs', type=int, help='default: the checkpoint\'s stage 1')
        parser.add_argument('--frames', type=int, default=300, help='frames timed')
        parser.add_argument('--threads', type=int, default=1,
                            help='ONNX Runtime intra-op threads')
        parser.add_argument('--out', default='reports/bench_multitask_widths', help='folder')

    def main(self, args) -> int:
        from adaptive_perception.channels.encoder_widths import run_bench_multitask_widths
        with user_errors():
            run_bench_multitask_widths(args.checkpoint, Path(args.out), args.widths,
                                       args.epochs, args.frames, args.threads)
        return 0


VERBS = (_BenchChannels(), _BenchGating(), _BenchMultitaskWidths())
