"""Ctrl-C on `adaptive-perception launch edge` with every core busy: all nodes exit 0, quietly."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ros_harness import node_env
from ros_tools import CpuHog

pytestmark = pytest.mark.slow

NODES = ['budget_manager', 'power_simulator', 'camera_source', 'imu_simulator',
         'adacon_detector', 'adamtl_multitask', 'activity_recognizer']


def _all_processing(text: str) -> bool:
    lines = text.splitlines()
    return bool(lines) and all(f'{n} ' in lines[-1] and 'Hz' in lines[-1] for n in (
        'adacon_detector', 'adamtl_multitask', 'activity_recognizer'))


def test_ctrl_c_under_load_stops_every_node_cleanly(tmp_path):
    report = tmp_path / 'report'
    out = tmp_path / 'launcher.out'
    with open(out, 'w') as sink:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'adaptive_perception.cli', 'launch', 'edge',
             '--report-dir', str(report)], env={**os.environ, **node_env()}, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True)
    hog = None
    try:
        deadline = time.monotonic() + 180
        # every perception node processing: its rate is in the launcher's status line
        while time.monotonic() < deadline and not _all_processing(out.read_text()):
            assert proc.poll() is None, out.read_text()
            time.sleep(0.5)
        assert time.monotonic() < deadline, out.read_text()[-3000:]
        hog = CpuHog()
        time.sleep(2.0)
        start = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        code = proc.wait(60)
        seconds = time.monotonic() - start
    finally:
        if hog:
            hog.stop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.read_text()
    assert code == 0, text[-3000:]
    assert 'nodes that failed' not in text and 'Traceback' not in text, text[-3000:]
    for node in NODES:
        log = (report / 'logs' / f'{node}.log').read_text()
        assert 'Traceback' not in log and 'KeyboardInterrupt' not in log, (node, log[-2000:])
    assert seconds < 10.0, seconds
    print(f'adaptive-perception launch edge: Ctrl-C under load stopped in {seconds:.2f} s')
