"""Export a trained AdaCon checkpoint as the ONNX graphs and manifest the runtime reads.

One graph per part - backbone, controller, static head, each branch - so that a
branch the controller does not select costs nothing at run time, and one such set
per backbone width, each cut out of the shared weights as a plain static model
(``SlimmableAdaCon.at_width``), so that a narrower width does no masked work. MACs
are counted per graph by PyTorch's FLOP counter (MACs = FLOPs / 2) on exactly what
is exported.

Every graph also gets a calibrated INT8 copy (``add_int8``, ``runtime/quantize.py``),
calibrated on the training distribution: frames of the scene generator with the
training set's seed, the heads and the controller on the FP32 backbone's features
of those frames. ``add_int8`` works on an exported directory alone (no checkpoint),
so a shipped model gains INT8 graphs without its FP32 ones changing.
"""

from dataclasses import asdict, replace
from pathlib import Path

import torch

from adaptive_perception.detection.config import AdaconTrainConfig
from adaptive_perception.detection.manifest import HeadSpec, Manifest, WidthGraphs
from adaptive_perception.detection.model import DecodedHead
from adaptive_perception.detection.slimmable import SlimmableAdaCon, width_key
from adaptive_perception.detection.train import MODEL_FORMATS
from adaptive_perception.runtime.quantize import int8_file, quantize_graph
from adaptive_perception.training import load_checkpoint as read_checkpoint
from adaptive_perception.training.macs import count_macs
from adaptive_perception.training.onnx_export import export_graph

CALIBRATION_FRAMES = 256


def load_checkpoint(path) -> tuple:
    """(SlimmableAdaCon in eval mode, checkpoint dict) from what ``train_adacon`` saved."""
    checkpoint = read_checkpoint(path, MODEL_FORMATS, 'AdaCon')
    model = SlimmableAdaCon(checkpoint['config'], checkpoint['widths'],
                            dict(checkpoint.get('branch_scales', [])))
    model.load_state_dict(checkpoint['state_dict'])
    return model.eval(), checkpoint


def calibration_frames(count: int, seed: int, size: int) -> list:
    """Return the first ``count`` generated scenes with ``seed`` (0 = the training set)."""
    from adaptive_perception.detection.scenes import SceneGenerator
    generator = SceneGenerator(seed, size)
    return [generator.sample()[0] for _ in range(count)]


def add_int8(model_dir, count: int = CALIBRATION_FRAMES, seed: int = 0,
             method: str = 'minmax') -> Manifest:
    """Write a calibrated INT8 copy of every graph of an exported model; the new manifest.

    Calibration frames: ``count`` generated scenes with ``seed`` (the training set's
    first frames at seed 0), letterboxed and normalised as the runtime does. The
    backbone sees them; the controller and the heads of a width see that width's
    FP32 backbone features of them. Only ``manifest.json``'s ``int8`` entry and the
    ``*_int8.onnx`` files are written; the FP32 graphs stay as they are.
    """
    from adaptive_perception.detection.engine import AdaConEngine
    model_dir = Path(model_dir)
    manifest = Manifest.load(model_dir)
    if manifest.int8:  # the engine must load the FP32 graphs only, whatever is there
        manifest = replace(manifest, int8={})
        manifest.save(model_dir)
    engine = AdaConEngine(model_dir, threads=1)
    height, width = manifest.input_size
    images = [engine.preprocess(rgb)[0]
              for rgb in calibration_frames(count, seed, max(height, width))]
    source = (f'adaptive_perception context scenes, SceneGenerator(seed={seed}) frames '
              f'0..{count - 1} (the training set at seed 0), letterboxed and normalised')
    graphs, reports = {}, {}

    def quantize(file: str, feeds: list, what: str) -> None:
        report = quantize_graph(model_dir / file, model_dir / int8_file(file), feeds,
                                f'{source}{what}', method=method)
        graphs[file], reports[file] = report.file, report.to_json()
        print(f'[adacon int8] {report.file}: INT8 {report.quantized_ops}, '
              f'FP32 {report.fp32_ops}', flush=True)

    for widths in manifest.widths:
        quantize(widths.backbone['file'], [{'image': image} for image in images], '')
        features = [{'features': engine.features(image, widths.width)} for image in images]
        what = f'; through the FP32 width-{widths.width:g} backbone'
        quantize(widths.controller['file'], features, what)
        for head in [widths.static_head, *widths.branches]:
            quantize(head.file, features, what)
    manifest = replace(manifest, int8={
        'graphs': graphs, 'reports': reports,
        'calibration': {'frames': count, 'seed': seed, 'method': method, 'data': source}})
    manifest.save(model_dir)
    total = sum((model_dir / f).stat().st_size for f in graphs.values())
    print(f'[adacon int8] wrote {len(graphs)} INT8 graphs ({total / 1e6:.2f} MB) and '
          f'{model_dir / "manifest.json"}', flush=True)
    return manifest


def export_adacon(checkpoint, out_dir, int8: bool = True,
                  calibration_frames_count: int = CALIBRATION_FRAMES) -> Manifest:
    """Write every width's graphs and ``manifest.json``; the manifest.

    Per width: backbone, controller, static_head, branch_<i>. Full-width files are
    plain (``backbone.onnx``), narrower ones carry the width (``backbone_w050.onnx``).
    ``int8``: also write the calibrated INT8 copies (``add_int8``).
    """
    slimmable, ckpt = load_checkpoint(checkpoint)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = ckpt['input_size']
    image = torch.zeros(1, 3, height, width)

    def export(name, module, inputs, input_names, output_names):
        path = out_dir / f'{name}.onnx'
        export_graph(module, inputs, path, input_names, output_names)
        macs = count_macs(module, *inputs)
        print(f'[adacon export] {path.name}: {macs:,} MACs, '
              f'{path.stat().st_size / 1e3:.0f} kB', flush=True)
        return {'file': path.name, 'macs': macs}

    def export_width(share: float) -> WidthGraphs:
        model = slimmable.at_width(share)
        suffix = '' if share == 1.0 else f'_{width_key(share)}'
        with torch.no_grad():
            features = model.backbone(image)

        def export_head(file, name, head, class_ids):
            graph = export(file + suffix, DecodedHead(head, model.stride).eval(), (features,),
                           ['features'], ['heatmap', 'box'])
            return HeadSpec(name=name, class_ids=list(class_ids), **graph)

        return WidthGraphs(
            width=share,
            backbone=export('backbone' + suffix, model.backbone, (image,), ['image'],
                            ['features']),
            controller=export('controller' + suffix, model.controller, (features,),
                              ['features'], ['logits']),
            static_head=export_head('static_head', 'static', model.static_head,
                                    ckpt['category_ids']),
            branches=[export_head(f'branch_{i}', name, head, ids)
                      for i, (name, head, ids) in enumerate(zip(
                          ckpt['branch_names'], model.branches, ckpt['branch_ids'],
                          strict=True))])

    widths = [export_width(share) for share in slimmable.widths]
    # The run's configuration, then its provenance (an older checkpoint's settings too).
    training = {**asdict(AdaconTrainConfig.from_checkpoint(ckpt)), **ckpt['training'],
                'checkpoint': str(checkpoint)}
    manifest = Manifest(
        input_size=[height, width], stride=slimmable.full.stride, mean=ckpt['mean'],
        std=ckpt['std'], classes={int(cid): name for cid, name in ckpt['class_names'].items()},
        common_class_ids=ckpt['common_ids'], widths=widths, training=training)
    path = manifest.save(out_dir)
    files = [file for graphs in widths for file in graphs.files()]
    total = sum((out_dir / file).stat().st_size for file in files)
    print(f'[adacon export] wrote {path} and {len(files)} graphs ({total / 1e6:.2f} MB)',
          flush=True)
    if int8:
        manifest = add_int8(out_dir, calibration_frames_count)
    return manifest
