"""Linters in test/, as ROS 2 Python packages keep them.

ruff runs pycodestyle, pyflakes, isort, pep257 docstrings and bugbear over the
package, the launch file and the tests.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name('ruff')
    run = subprocess.run([str(ruff), 'check', '--no-cache', '.'], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
