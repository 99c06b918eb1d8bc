"""One way to open any exported detector folder: the manifest's ``family`` picks the engine.

``adacon`` (the generated-scenes AdaCon model; its manifests carry no ``family``
key) -> ``engine.AdaConEngine``; ``fastestdet`` (the COCO-pretrained model) ->
``fastestdet.engine.FastestDetEngine``. Both have the interface the detector node
uses, so ``adacon_detector``, ``eval adacon`` and ``bench detector`` take either folder.
"""

import json
from pathlib import Path
from typing import Callable, Sequence

from adaptive_perception.runtime.onnx_sessions import CPU

ADACON, FASTESTDET = 'adacon', 'fastestdet'
FAMILIES = (ADACON, FASTESTDET)


def model_family(model_dir) -> str:
    """Return the family of an exported model folder; ValueError if missing or unknown."""
    path = Path(model_dir) / 'manifest.json'
    if not path.is_file():
        raise ValueError(f'{path} not found: not an exported detector model directory')
    try:
        family = json.loads(path.read_text()).get('family', ADACON)
    except (json.JSONDecodeError, AttributeError) as error:
        raise ValueError(f'{path}: not a JSON object: {error}') from None
    if family not in FAMILIES:
        raise ValueError(f'{path}: unknown model family {family!r}; known: '
                         f'{", ".join(FAMILIES)}')
    return family


def load_engine(model_dir, providers: Sequence[str] = (CPU,), threads: int | None = None,
                warn: Callable[[str], None] | None = None):
    """Load the engine of ``model_dir``'s family, every graph resident."""
    if model_family(model_dir) == FASTESTDET:
        from adaptive_perception.detection.fastestdet.engine import FastestDetEngine
        return FastestDetEngine(model_dir, providers, threads, warn)
    from adaptive_perception.detection.engine import AdaConEngine
    return AdaConEngine(model_dir, providers, threads, warn)


def parse_engine_mode(engine, text: str):
    """Parse a level entry against what ``engine``'s model has; ValueError if it has not.

    AdaCon: 'static', 'single', 'multi:<T>', each optionally '@<backbone width>' and
    '/int8', or a cascade; FastestDet: 'static@<input size>' with an optional '/int8'.
    """
    if hasattr(engine, 'parse_mode'):
        return engine.parse_mode(text)
    from adaptive_perception.detection.manifest import parse_mode
    return engine.check_mode(parse_mode(text))


def default_modes(engine) -> list:
    """Return the level profile used when ``level_modes`` is not set: one entry a level."""
    if hasattr(engine, 'sizes'):
        return [f'static@{size}' for size in engine.sizes]
    from adaptive_perception.detection.manifest import DEFAULT_MODES
    return list(DEFAULT_MODES)
