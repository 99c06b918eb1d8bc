"""``adaptive-perception`` verbs of the multi-task family (AdaMTL).

data dense, train adamtl, train adamtl-references, export/eval adamtl, bench multitask.
"""

import json
import sys
from pathlib import Path

from adaptive_perception.errors import user_errors
from adaptive_perception.multitask.config import AdamtlTrainConfig
from adaptive_perception.verb_args import config_from_args, dataclass_args, int8_args


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


def _model_dir_args(parser) -> None:
    from adaptive_perception.paths import share_dir
    parser.add_argument('--model-dir', default=str(share_dir() / 'models' / 'adamtl'),
                        help='exported model (default: the installed models/adamtl)')
    parser.add_argument('--threads', type=int, default=1, help='ONNX Runtime intra-op threads')


class _DataDense:
    group, name = 'data', 'dense'
    help = 'dense-prediction scenes for the multi-task model (segmentation, depth, normals, ' \
           'saliency)'

    def add_arguments(self, parser) -> None:
        parser.add_argument('--out', required=True, help='dataset folder (format: README)')
        parser.add_argument('--count', type=int, default=4000, help='number of scenes')
        parser.add_argument('--seed', type=int, default=0)
        parser.add_argument('--size', type=int, default=64, help='image side in pixels')

    def main(self, args) -> int:
        from adaptive_perception.multitask.dataset import write_dataset
        out = write_dataset(Path(args.out), args.count, args.seed, args.size)
        print(f'written {args.count} scenes to {out}')
        return 0


class _TrainAdamtl:
    group, name = 'train', 'adamtl'
    help = 'adaptive multi-task transformer: static, policy init, co-training; single-task ' \
           'references'

    def add_arguments(self, parser) -> None:
        _dense_args(parser, 'train', 4000, 0)
        _dense_args(parser, 'val', 500, 1)
        parser.add_argument('--out', required=True, help='checkpoint file (.pt)')
        dataclass_args(parser, AdamtlTrainConfig)
        parser.add_argument('--static-from',
                            help='reuse stage 1 and the single-task references of an earlier '
                                 'checkpoint (same data/settings)')
        parser.add_argument('--jobs', type=int, choices=[1, 2], default=1,
                            help='2: train the single-task models in a second process')
        parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cuda'")

    def main(self, args) -> int:
        from adaptive_perception.multitask.model import ModelConfig, parse_targets
        from adaptive_perception.multitask.train import train_adamtl
        config = config_from_args(AdamtlTrainConfig, args)
        with user_errors(prefix='--targets: '):
            parse_targets(config.targets)
        size = ModelConfig.image_size if config.image_size is None else config.image_size
        decoder_dim = ModelConfig.decoder_dim if config.decoder_dim is None \
            else config.decoder_dim
        with user_errors():  # before generating any data
            ModelConfig(image_size=size, decoder_dim=decoder_dim)
        train, train_text = _dense(args.train, args.train_count, args.train_seed, size)
        val, val_text = _dense(args.val, args.val_count, args.val_seed, size)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        train_adamtl(config, train, val, out, jobs=args.jobs, static_from=args.static_from,
                     device=args.device, train_description=train_text,
                     val_description=val_text,
                     provenance={'command': ' '.join(sys.argv), 'train': train_text,
                                 'val': val_text})
        print(f'written {out}')
        return 0


class _TrainAdamtlReferences:
    group, name = 'train', 'adamtl-references'
    help = ("train the single-task references a run skipped (--no-single-task) into its "
            "checkpoint or exported model: stage 1's data and recipe; a stopped run goes "
            "on where it was")

    def add_arguments(self, parser) -> None:
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument('--checkpoint',
                           help='an AdaMTL checkpoint or its .stage1.pt (written in place)')
        where.add_argument('--model-dir',
                           help='an exported AdaMTL directory, e.g. models/adamtl '
                                '(its manifest.json is written in place)')
        parser.add_argument('--device', default='cpu', help="torch device, e.g. 'cuda'")

    def main(self, args) -> int:
        from adaptive_perception.multitask.train import (
            add_single_task_references,
            add_single_task_references_to_model,
        )
        with user_errors():
            if args.model_dir:
                references = add_single_task_references_to_model(args.model_dir, args.device)
            else:
                references = add_single_task_references(args.checkpoint, args.device)
        print(f'single-task references in {args.model_dir or args.checkpoint}: '
              f'{references["single_task"]["scores"]}')
        return 0


class _ExportAdamtl:
    group, name = 'export', 'adamtl'
    help = 'one encoder graph per policy, the decoders (FP32 and INT8) + manifest.json'

    def add_arguments(self, parser) -> None:
        int8_args(parser, 128)
        parser.add_argument('--out', required=True, help='model directory, e.g. models/adamtl')
        parser.add_argument('--references',
                            help='take the single-task references from this checkpoint (same '
                                 'stage 1, e.g. the run that --static-from reused)')

    def main(self, args) -> int:
        from adaptive_perception.multitask.export import add_int8, export_adamtl
        with user_errors():
            if not args.int8_only:
                export_adamtl(Path(args.checkpoint), Path(args.out), args.references)
            if not args.no_int8:
                add_int8(Path(args.out), args.calibration_frames)
        print(f'written {args.out}')
        return 0


class _EvalAdamtl:
    group, name = 'eval', 'adamtl'
    help = 'per task and policy: mIoU, depth RMSE, normals error, saliency maxF, delta_m'

    def add_arguments(self, parser) -> None:
        _model_dir_args(parser)
        _dense_args(parser, 'data', 500, 1)
        parser.add_argument('--policies', nargs='+', default=None,
                            help='policies to score (default: all in the model)')
        parser.add_argument('--providers', nargs='+', default=['CPUExecutionProvider'],
                            help='ONNX Runtime execution providers, in order of preference')
        parser.add_argument('--out', help='JSON report')

    def main(self, args) -> int:
        from adaptive_perception.multitask.engine import MultiTaskEngine
        from adaptive_perception.multitask.evaluate import evaluate_report
        engine = MultiTaskEngine(args.model_dir, args.providers, args.threads)
        data, text = _dense(args.data, args.data_count, args.data_seed, engine.input_size)
        report = evaluate_report(engine, data, text, args.policies)
        print(json.dumps(report, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1) + '\n')
        return 0


class _BenchMultitask:
    group, name = 'bench', 'multitask'
    help = 'AdaMTL policies vs static: scores, delta_m, FLOPs, latency, histogram'

    def add_arguments(self, parser) -> None:
        _model_dir_args(parser)
        _dense_args(parser, 'data', 500, 1)
        parser.add_argument('--checkpoint',
                            help='also time the PyTorch model (runtime choice)')
        parser.add_argument('--frames-per-turn', type=int,
                            help='consecutive frames each configuration runs in its turn '
                                 '(default 20)')
        parser.add_argument('--out', default='reports/bench_multitask', help='folder')

    def main(self, args) -> int:
        from adaptive_perception.multitask.bench import run_bench_multitask
        from adaptive_perception.multitask.manifest import MultitaskManifest
        with user_errors():
            # Scenes are generated at the model's own input size, as eval adamtl does.
            size = MultitaskManifest.load(args.model_dir).input_size
            data, text = _dense(args.data, args.data_count, args.data_seed, size)
            run_bench_multitask(args.model_dir, data, text, Path(args.out), args.checkpoint,
                                args.threads, frames_per_turn=args.frames_per_turn)
        return 0


VERBS = (_DataDense(), _TrainAdamtl(), _TrainAdamtlReferences(), _ExportAdamtl(), _EvalAdamtl(),
         _BenchMultitask())
