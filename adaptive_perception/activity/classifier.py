"""The activity classifier at run time: one ONNX graph, any sensor configuration.

``models/activity/`` holds ``classifier.onnx`` (feature standardisation and the
2-layer MLP in one graph, exported with skl2onnx) and ``manifest.json``: the
class names, the feature layout it was trained on (checked against
``features.py`` on load, so a model and a feature extractor that disagree never
run together), the sensor states it was trained at, and its measured accuracy.
No torch and no scikit-learn at run time: ONNX Runtime only.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from adaptive_perception.activity.features import FEATURE_NAMES, HOP_S, WINDOW_S
from adaptive_perception.activity.sensor import parse_config
from adaptive_perception.runtime.manifest import ModelManifest
from adaptive_perception.runtime.onnx_sessions import CPU, create_sessions

FORMAT = 'adaptive_perception.activity/1'


@dataclass
class ActivityManifest(ModelManifest):
    """What ``manifest.json`` says about an exported classifier."""

    FORMAT = FORMAT
    KIND = 'exported activity model'

    class_names: list
    feature_names: list
    states: list                      # sensor states trained at, costliest first
    graph: str = 'classifier.onnx'
    input_name: str = 'X'
    probabilities_output: str = 'probabilities'
    window_s: float = WINDOW_S
    hop_s: float = HOP_S
    hidden_units: int = 0
    parameters: int = 0               # weights + biases of the MLP
    validation: dict = field(default_factory=dict)   # state name -> accuracy
    training: dict = field(default_factory=dict)     # provenance
    format: str = FORMAT

    @classmethod
    def missing(cls, path: Path, model_dir) -> str:
        """Name the folder: the recognizer's ``model_dir`` parameter is the usual culprit."""
        return f'{path}: no such file (is {model_dir} an exported activity model?)'

    def check(self, model_dir) -> None:
        """Trained on the features this code computes, at known sensor states."""
        path, manifest = self.path(model_dir), self
        if list(manifest.feature_names) != list(FEATURE_NAMES) or (
                manifest.window_s, manifest.hop_s) != (WINDOW_S, HOP_S):
            raise ValueError(f'{path}: trained on other features than this code computes '
                             f'(feature names or window/hop differ); retrain or use the '
                             f'matching version')
        if len(manifest.class_names) < 2 or not manifest.states:
            raise ValueError(f'{path}: needs at least 2 classes and 1 sensor state')
        for state in manifest.states:
            parse_config(state)


class ActivityClassifier:
    """Probabilities of each activity for feature rows, on ONNX Runtime."""

    def __init__(self, model_dir, providers: Sequence[str] = (CPU,), threads: int = 1,
                 warn: Callable[[str], None] | None = None):
        self.model_dir = Path(model_dir)
        self.manifest = ActivityManifest.load(self.model_dir)
        loaded = create_sessions({'classifier': self.model_dir / self.manifest.graph},
                                 providers, threads, warn)
        self._session = loaded.sessions['classifier']
        self.providers = loaded.providers
        self.class_names = list(self.manifest.class_names)
        self.states = [parse_config(s) for s in self.manifest.states]
        columns = self.probabilities(np.zeros((1, len(FEATURE_NAMES)), np.float32)).shape[1]
        if columns != len(self.class_names):
            # names are read by column: a mismatch would publish wrong names silently
            raise ValueError(f'{self.model_dir / self.manifest.graph}: the graph has {columns} '
                             f'output classes, the manifest names {len(self.class_names)} '
                             f'({", ".join(self.class_names)}); retrain with this version')

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, FEATURE_SIZE) features -> (n, classes) probabilities."""
        rows = np.atleast_2d(np.asarray(features, dtype=np.float32))
        out = self._session.run([self.manifest.probabilities_output],
                                {self.manifest.input_name: rows})[0]
        return np.asarray(out)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, FEATURE_SIZE) features -> (n,) class indices."""
        return self.probabilities(features).argmax(axis=1)
