"""Writing PyTorch modules as checked ONNX graphs: the export side, apart from the runtime.

Every exported model (detector, multi-task) goes through one function, so the
exporter settings the runtimes rely on - one self-contained file, the dynamo
exporter, a full checker pass - are chosen once.
"""

import logging
import warnings
from pathlib import Path

import onnx
import torch


def export_graph(module: torch.nn.Module, inputs: tuple, path: Path, input_names: list,
                 output_names: list, dynamic_shapes=None) -> None:
    """Write ``module`` as one self-contained ONNX file (no external data) and check it.

    ``dynamic_shapes``: as for ``torch.export`` (e.g. a token count that varies).
    """
    # Quiet the exporter's notes on its own internals (e.g. "torchvision is not installed").
    exporter_log = logging.getLogger('torch.onnx')
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            torch.onnx.export(module, inputs, path, input_names=input_names,
                              output_names=output_names, dynamo=True, external_data=False,
                              dynamic_shapes=dynamic_shapes, verbose=False)
    finally:
        exporter_log.setLevel(level)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
