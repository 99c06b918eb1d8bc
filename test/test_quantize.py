"""runtime/quantize.py: calibrated INT8 copies of a graph, and their report (no torch)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from adaptive_perception.runtime.quantize import (
    FeedsReader,
    int8_file,
    max_abs_difference,
    quantize_graph,
)


def _conv_graph(path) -> None:
    """Write a graph: image (1, 3, 16, 16) -> Conv 3x3 -> Relu -> Conv 1x1 -> Sigmoid -> out."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), 'w1')
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), 'b1')
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32), 'w2')
    nodes = [helper.make_node('Conv', ['image', 'w1', 'b1'], ['c1'], pads=[1, 1, 1, 1],
                              name='conv1'),
             helper.make_node('Relu', ['c1'], ['r1'], name='relu1'),
             helper.make_node('Conv', ['r1', 'w2'], ['c2'], name='conv2'),
             helper.make_node('Sigmoid', ['c2'], ['out'], name='sigmoid')]
    graph = helper.make_graph(
        nodes, 'g', [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, 4, 16, 16])],
        [w1, b1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _feeds(count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [{'image': rng.normal(0, 1, (1, 3, 16, 16)).astype(np.float32)}
            for _ in range(count)]


def _run(path, feeds) -> list:
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return [session.run(None, feed)[0] for feed in feeds]


def test_int8_copy_matches_fp32_within_tolerance_and_reports(tmp_path):
    fp32, int8 = tmp_path / 'net.onnx', tmp_path / int8_file('net.onnx')
    _conv_graph(fp32)
    before = fp32.read_bytes()
    report = quantize_graph(fp32, int8, _feeds(16, 0), 'normal(0, 1), seed 0')
    assert fp32.read_bytes() == before  # the source is never touched
    assert report.file == 'net_int8.onnx' and report.calibration_count == 16
    assert report.quantized_ops == {'Conv': 2}
    assert report.fp32_ops == {'Sigmoid': 1}
    assert report.removed_ops == {'Relu': 1}  # folded into conv1's uint8 output range
    assert set(report.excluded) == {'Sigmoid'}
    assert report.to_json()['calibration_method'] == 'minmax'
    ops = [n.op_type for n in onnx.load(str(int8)).graph.node]
    assert {'QuantizeLinear', 'DequantizeLinear'} <= set(ops) and 'Relu' not in ops
    # conv1 -> conv2 is one quantize/dequantize pair: no FP32 Relu between them.
    assert ops.count('QuantizeLinear') == 3  # image, conv1's output, conv2's output
    # Unseen inputs from the calibration distribution: within 3% of the output range.
    test = _feeds(4, 1)
    for a, b in zip(_run(fp32, test), _run(int8, test), strict=True):
        assert max_abs_difference([a], [b])[0] < 0.03
        assert not np.array_equal(a, b)  # really quantized, not a copy


def test_relu_left_out_of_the_op_types_stays_fp32_between_two_quantize_pairs(tmp_path):
    fp32 = tmp_path / 'net.onnx'
    _conv_graph(fp32)
    report = quantize_graph(fp32, tmp_path / 'net_int8.onnx', _feeds(4, 0), 'test',
                            op_types=('Conv',))
    assert report.fp32_ops == {'Relu': 1, 'Sigmoid': 1} and report.removed_ops == {}
    ops = [n.op_type for n in onnx.load(str(tmp_path / 'net_int8.onnx')).graph.node]
    assert ops.count('QuantizeLinear') == 4


def test_excluded_node_stays_fp32(tmp_path):
    fp32 = tmp_path / 'net.onnx'
    _conv_graph(fp32)
    report = quantize_graph(fp32, tmp_path / 'net_int8.onnx', _feeds(4, 0), 'test',
                            exclude_nodes=lambda n: 'last layer' if n.name == 'conv2' else None)
    assert report.quantized_ops == {'Conv': 1}
    assert report.excluded['conv2'] == 'last layer'


def test_bad_arguments():
    with pytest.raises(ValueError, match='at least one'):
        FeedsReader([])
    with pytest.raises(ValueError, match='calibration method'):
        quantize_graph('a.onnx', 'b.onnx', [{}], 'x', method='magic')
