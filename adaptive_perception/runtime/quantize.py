"""Calibrated INT8 copies of exported FP32 graphs, made in one place for every model.

ONNX Runtime's post-training static quantization (``quantize_static``) in QDQ form:
weights INT8 per output channel (symmetric), activations UINT8 (asymmetric), the
scales of the activations calibrated by running the FP32 graph on real inputs (a
``CalibrationDataReader`` over training frames, never random data: random inputs
give ranges the deployed inputs never reach, and accuracy drops for nothing). U8S8
is the pairing ONNX Runtime's x86 kernels (VNNI) run fastest.

Quantized by default: the operators that carry the cost (``Conv``, ``Gemm``,
``MatMul``), the ``Relu`` after them and the residual ``Add``. A Relu left in FP32
between two INT8 convolutions costs a dequantize, the FP32 Relu and a quantize
again; listed, the quantizer removes it instead (the uint8 range of the operator
before it starts at zero, which is the Relu), and INT8 tensors flow from one
convolution to the next. Measured on AdaCon's backbone (1 thread, this CPU): the
INT8 graph ran at 0.55x FP32 with Relu in FP32 and 0.43x with it folded, and it was
closer to FP32 (one rounding instead of three). The other element-wise operators
(sigmoids, exps, resizes, slices) stay FP32: quantizing them adds a
quantize/dequantize pair each for little arithmetic, or costs accuracy where the
output range is what the consumer reads (a sigmoid heatmap compared against a score
threshold, say). ``QuantizationReport`` says, per graph, which operators were
quantized, which were folded away, which were left in FP32 and why, and how the
calibration was done; manifests keep it.

The FP32 source is never modified: the INT8 graph is a new file next to it.
"""

import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

# What is quantized unless a caller says otherwise: the operators with the MACs, the
# Relu the quantizer folds into them, and the residual Add (see the module docstring).
DEFAULT_OP_TYPES = ('Conv', 'Gemm', 'MatMul', 'Relu', 'Add')
# Why an operator that the graph has is left in FP32 (written into the report).
REASON_NOT_LISTED = ('element-wise or data-movement operator: little arithmetic, and a '
                     'quantize/dequantize pair around it costs more than it saves')
CALIBRATION_METHODS = {'minmax': CalibrationMethod.MinMax,
                       'percentile': CalibrationMethod.Percentile,
                       'entropy': CalibrationMethod.Entropy}
INT8_SUFFIX = '_int8'


def int8_file(fp32_file: str) -> str:
    """Name of the INT8 copy of a graph file: ``backbone_w050.onnx`` -> ``..._int8.onnx``."""
    path = Path(fp32_file)
    return str(path.with_name(f'{path.stem}{INT8_SUFFIX}{path.suffix}'))


class FeedsReader(CalibrationDataReader):
    """Calibration inputs for ``quantize_static``: one feed dict per frame, in order.

    ``feeds`` may be a list or any re-iterable; each item maps the graph's input
    names to numpy arrays (batch 1). The calibrator reads it once to the end.
    """

    def __init__(self, feeds: Iterable[dict]):
        self._feeds = list(feeds)
        if not self._feeds:
            raise ValueError('calibration needs at least one input frame')
        self._next = iter(self._feeds)

    def __len__(self) -> int:
        return len(self._feeds)

    def get_next(self) -> dict | None:
        """Return the next frame's feeds, None after the last."""
        return next(self._next, None)

    def rewind(self) -> None:
        """Start again from the first frame."""
        self._next = iter(self._feeds)


@dataclass(frozen=True)
class QuantizationReport:
    """What ``quantize_graph`` did to one graph: stored in the model's manifest."""

    source: str                  # FP32 file (name only)
    file: str                    # INT8 file (name only)
    format: str                  # 'QDQ'
    weights: str                 # 'int8 per-channel symmetric'
    activations: str             # 'uint8 asymmetric'
    calibration_method: str      # 'minmax' | 'percentile' | 'entropy'
    calibration_count: int       # frames the ranges were calibrated on
    calibration_data: str        # where those frames came from
    quantized_ops: dict          # op type -> nodes now running in INT8
    fp32_ops: dict               # op type -> nodes left in FP32
    removed_ops: dict            # op type -> FP32 nodes gone (Relu folded into a range)
    excluded: dict = field(default_factory=dict)  # op type or node -> why it stays FP32

    def to_json(self) -> dict:
        """Return the report as a plain dict, for a manifest."""
        return asdict(self)


def _op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def _quantized_nodes(model: onnx.ModelProto, op_types: Sequence[str]) -> tuple:
    """(op type -> nodes of ``op_types`` reading dequantized INT8, op type -> the others).

    In QDQ form an operator runs in INT8 where all its inputs (data, weights, bias)
    come through DequantizeLinear (ONNX Runtime fuses the pattern into an integer
    kernel); one that reads an FP32 weight computes in FP32 whatever feeds it.
    """
    dequantized = {out for node in model.graph.node if node.op_type == 'DequantizeLinear'
                   for out in node.output}
    quantized, fp32 = Counter(), Counter()
    for node in model.graph.node:
        if node.op_type in ('QuantizeLinear', 'DequantizeLinear'):
            continue
        int8 = node.op_type in op_types and all(i in dequantized for i in node.input if i)
        (quantized if int8 else fp32)[node.op_type] += 1
    return quantized, fp32


def quantize_graph(fp32_path, int8_path, feeds: Iterable[dict], calibration_data: str,
                   op_types: Sequence[str] = DEFAULT_OP_TYPES,
                   exclude_nodes: Callable[[onnx.NodeProto], str | None] | None = None,
                   method: str = 'minmax', per_channel: bool = True,
                   reasons: dict | None = None) -> QuantizationReport:
    """Write a calibrated INT8 (QDQ) copy of ``fp32_path`` to ``int8_path``; its report.

    ``feeds``: the calibration inputs (see ``FeedsReader``); ``calibration_data``
    says where they came from, for the manifest. ``op_types``: the operator types
    to quantize. ``exclude_nodes``: called per node of the FP32 graph; a returned
    reason keeps that node in FP32 (e.g. a head's last layer, whose output is read
    against thresholds). ``method``: how activation ranges are calibrated.
    ``reasons``: op type -> why it is left out of ``op_types`` (for the report; the
    default reason covers the element-wise operators).
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f'calibration method {method!r}: expected one of '
                         f'{", ".join(CALIBRATION_METHODS)}')
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    reader = FeedsReader(feeds)
    source = onnx.load(str(fp32_path))
    excluded, exclude_names = {}, []
    for node in source.graph.node:
        reason = exclude_nodes(node) if exclude_nodes else None
        if reason:
            exclude_names.append(node.name)
            excluded[node.name] = reason
    for op_type in sorted(set(_op_counts(source)) - set(op_types)):
        excluded[op_type] = (reasons or {}).get(op_type, REASON_NOT_LISTED)
    with tempfile.TemporaryDirectory(prefix='quantize_') as scratch:
        # Shape inference and constant folding first, as onnxruntime recommends: the
        # quantizer needs every tensor's shape to pick per-channel axes.
        prepared = Path(scratch) / 'prepared.onnx'
        try:
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - a graph the pre-processor cannot take: quantize as is
            prepared = fp32_path
        # reduce_range off: the x86 U8S8 kernels saturate only without VNNI.
        quantize_static(
            str(prepared), str(int8_path), reader,
            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types),
            per_channel=per_channel, reduce_range=False,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude_names, calibrate_method=CALIBRATION_METHODS[method],
            extra_options={'ActivationSymmetric': False, 'WeightSymmetric': True})
    quantized_model = onnx.load(str(int8_path))
    quantized, fp32 = _quantized_nodes(quantized_model, op_types)
    removed = _op_counts(source) - _op_counts(quantized_model)
    return QuantizationReport(
        source=fp32_path.name, file=int8_path.name, format='QDQ',
        weights=f'int8 {"per-channel" if per_channel else "per-tensor"} symmetric',
        activations='uint8 asymmetric', calibration_method=method,
        calibration_count=len(reader), calibration_data=calibration_data,
        quantized_ops=dict(sorted(quantized.items())), fp32_ops=dict(sorted(fp32.items())),
        removed_ops=dict(sorted(removed.items())),
        excluded=excluded)


def max_abs_difference(fp32_outputs: Sequence[np.ndarray],
                       int8_outputs: Sequence[np.ndarray]) -> list:
    """Largest absolute difference per output, relative to that output's FP32 range."""
    result = []
    for a, b in zip(fp32_outputs, int8_outputs, strict=True):
        span = float(np.ptp(a)) or 1.0
        result.append(float(np.abs(a.astype(np.float64) - b).max()) / span)
    return result
