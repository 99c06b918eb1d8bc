"""What every bench writes: JSON, markdown tables, figures and checked targets, one way."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adaptive_perception.runtime.report_io import (
    cell,
    machine,
    markdown_table,
    pyplot,
    save_figure,
    target,
    write_json,
)


def test_json_is_written_with_its_folder_newline_terminated_and_any_value(tmp_path):
    path = write_json(tmp_path / 'a' / 'b.json', {'path': Path('x/y'), 'n': np.int64(3)})
    text = path.read_text()
    assert text.endswith('}\n')
    assert json.loads(text) == {'path': 'x/y', 'n': '3'}
    assert write_json(tmp_path / 'c.json', [1], indent=2).read_text() == '[\n  1\n]\n'


def test_markdown_table_has_a_rule_per_column_and_a_line_per_row():
    assert markdown_table(('a', 'b'), [('1', 2), ('x', cell(None))]) == (
        '| a | b |\n| --- | --- |\n| 1 | 2 |\n| x | - |')
    assert markdown_table(('only',), []) == '| only |\n| --- |'
    assert cell(0.12345) == '0.12' and cell(0.12345, '.3f') == '0.123'


def test_a_target_holds_a_value_to_its_limit_in_the_stated_direction():
    assert target(0.4, 0.45, point='static/int8') == {'point': 'static/int8', 'value': 0.4,
                                                       'met': True}
    assert target(0.5, 0.45)['met'] is False
    assert target(0.7, 0.6, at_most=False)['met'] is True
    assert target(0.5, 0.6, at_most=False)['met'] is False
    assert target(None, 0.6) == {'value': None, 'met': False}  # not measured: not met


def test_figure_is_written_and_closed(tmp_path):
    plt = pyplot()
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / 'f.png', dpi=50)
    assert path.stat().st_size > 500
    assert not plt.fignum_exists(figure.number)


def test_machine_names_where_it_ran():
    info = machine(['CPUExecutionProvider'], 1)
    assert info['providers'] == ['CPUExecutionProvider'] and info['threads'] == 1
    assert info['cpus'] >= 1 and info['onnxruntime']


@pytest.mark.parametrize('module', ['adaptive_perception.detection.bench',
                                   'adaptive_perception.detection.fastestdet.bench',
                                   'adaptive_perception.channels.bench'])
def test_the_detector_benches_import_without_ros(module):
    """Their tables, fits and targets are used off-robot: rclpy only where a node is built."""
    code = ('import sys\n'
            "for name in ('rclpy', 'sensor_msgs', 'std_msgs', 'builtin_interfaces'):\n"
            '    sys.modules[name] = None\n'
            f'import {module}\n')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_failed_json_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = write_json(tmp_path / 'r.json', {'run': 1})

    class Unwritable:
        def __str__(self):
            raise RuntimeError('cannot serialise')

    with pytest.raises(RuntimeError, match='cannot serialise'):
        write_json(path, {'run': 2, 'bad': Unwritable()})
    assert json.loads(path.read_text()) == {'run': 1}
    assert [p.name for p in tmp_path.iterdir()] == ['r.json']
