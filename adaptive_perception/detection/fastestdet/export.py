"""Export the vendored FastestDet weights as one ONNX graph per input size + manifest.json.

The vendored ``.pth`` (upstream's state dict) is the source: it is loaded into the
project's own module (model.py), checked, and written by the project's exporter
(``training.onnx_export.export_graph``) once per size, so every level is a plain,
resident graph of its own. Class ids and names come from a COCO annotation file
(the graph's 80 class channels are COCO's 80 categories in ascending id order).
MACs per graph are counted by PyTorch's FLOP counter on what is exported.
"""

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch

from adaptive_perception.detection.fastestdet.engine import INPUT, OUTPUT
from adaptive_perception.detection.fastestdet.manifest import FastestDetManifest, LevelGraph
from adaptive_perception.detection.fastestdet.model import STRIDE, load_fastestdet
from adaptive_perception.training.macs import count_macs
from adaptive_perception.training.onnx_export import export_graph

DEFAULT_SIZES = (352, 288, 224, 160)
UPSTREAM = 'dog-qiuqiu/FastestDet at 50473cd1 (BSD-3-Clause)'
TRAIN_SIZE = 352  # upstream trained the COCO weights at 352x352


def coco_classes(annotations) -> dict:
    """COCO category id -> name from an annotation file, ascending id (80 for COCO)."""
    categories = json.loads(Path(annotations).read_text())['categories']
    return {int(c['id']): c['name'] for c in sorted(categories, key=lambda c: c['id'])}


def max_relative_error(reference: np.ndarray, value: np.ndarray) -> float:
    """Largest |value - reference| over the largest |reference| (one scale for the tensor)."""
    return float(np.abs(value - reference).max() / max(np.abs(reference).max(), 1e-12))


def strip_node_provenance(path: Path) -> None:
    """Drop what the exporter notes on every node (source lines, module paths) from a graph.

    It does not change what the graph computes and was a quarter of the file (1.37
    -> 1.05 MB for the 352 graph, measured), which every clone of the repository carries.
    """
    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ''
    onnx.save(model, str(path))


def export_fastestdet(weights, annotations, out_dir, sizes: Sequence[int] = DEFAULT_SIZES,
                      seed: int = 0) -> FastestDetManifest:
    """Write ``fastestdet_<size>.onnx`` for every size and ``manifest.json``; the manifest.

    Each graph is run once in ONNX Runtime on a random image and compared with the
    PyTorch module (ValueError above 1e-4 relative): what is shipped computes what
    the weights compute.
    """
    classes = coco_classes(annotations)
    model = load_fastestdet(weights, len(classes))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    graphs = []
    for size in sorted(set(sizes), reverse=True):
        if size % 32:
            raise ValueError(f'input size {size} is not a multiple of 32')
        image = torch.rand(1, 3, size, size, generator=generator)
        path = out_dir / f'fastestdet_{size}.onnx'
        export_graph(model, (image,), path, [INPUT], [OUTPUT])
        strip_node_provenance(path)
        with torch.no_grad():
            expected = model(image).numpy()
        session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        got = session.run([OUTPUT], {INPUT: image.numpy()})[0]
        error = max_relative_error(expected, got)
        if error > 1e-4:
            raise ValueError(f'{path.name}: ONNX Runtime differs from PyTorch by {error:.2e}')
        macs = count_macs(model, image)
        graphs.append(LevelGraph(size=size, precision='fp32', file=path.name, macs=macs))
        print(f'[fastestdet export] {path.name}: {macs:,} MACs, '
              f'{path.stat().st_size / 1e3:.0f} kB, max error vs PyTorch {error:.1e}',
              flush=True)
    manifest = FastestDetManifest(
        classes=classes, graphs=graphs, stride=STRIDE, train_size=TRAIN_SIZE,
        source={'weights': Path(weights).name,
                'weights_sha256': hashlib.sha256(Path(weights).read_bytes()).hexdigest(),
                'upstream': UPSTREAM, 'classes_from': Path(annotations).name,
                'parameters': sum(p.numel() for p in model.parameters())})
    path = manifest.save(out_dir)
    print(f'[fastestdet export] wrote {path} and {len(graphs)} graphs', flush=True)
    return manifest
