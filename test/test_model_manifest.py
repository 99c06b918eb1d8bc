"""One manifest base for every family: shipped folders load as they are, errors name the file."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from adaptive_perception.activity.classifier import ActivityManifest
from adaptive_perception.detection.fastestdet.manifest import FastestDetManifest
from adaptive_perception.detection.manifest import Manifest
from adaptive_perception.runtime.manifest import ModelManifest

MODELS = Path(__file__).resolve().parents[1] / 'models'
FAMILIES = [(Manifest, 'adacon'), (FastestDetManifest, 'coco_fastestdet'),
            (ActivityManifest, 'activity')]


@pytest.mark.parametrize(('cls', 'folder'), FAMILIES)
def test_every_shipped_manifest_loads_unchanged_and_writes_back_the_same(cls, folder, tmp_path):
    manifest = cls.load(MODELS / folder)
    assert isinstance(manifest, ModelManifest)
    assert manifest.format == cls.FORMAT
    shipped = json.loads((MODELS / folder / 'manifest.json').read_text())
    assert manifest.to_json() == shipped  # the base adds no field: the layout is the family's
    copy = tmp_path / folder
    shutil.copytree(MODELS / folder, copy, ignore=shutil.ignore_patterns('*.png', '*.md'))
    manifest.save(copy)
    assert json.loads((copy / 'manifest.json').read_text()) == shipped
    assert not list(copy.glob('*.partial'))
    assert cls.load(copy) == manifest


@pytest.mark.parametrize(('cls', 'folder'), FAMILIES)
def test_a_foreign_or_broken_manifest_is_a_value_error_naming_the_file(cls, folder, tmp_path):
    with pytest.raises(ValueError, match='manifest.json(: no such file| not found)'):
        cls.load(tmp_path)
    (tmp_path / 'manifest.json').write_text('{"format": "something-else/9"}')
    with pytest.raises(ValueError, match="format 'something-else/9', expected"):
        cls.load(tmp_path)
    (tmp_path / 'manifest.json').write_text('{not json')
    with pytest.raises(ValueError, match='cannot read the .* manifest'):
        cls.load(tmp_path)
    (tmp_path / 'manifest.json').write_text(json.dumps({'format': cls.FORMAT}))
    with pytest.raises(ValueError, match='manifest.json: malformed'):
        cls.load(tmp_path)


def test_a_graph_the_manifest_names_must_be_in_the_folder(tmp_path):
    copy = tmp_path / 'fastestdet'
    shutil.copytree(MODELS / 'coco_fastestdet', copy)
    manifest = FastestDetManifest.load(copy)
    replace(manifest, graphs=[replace(manifest.graphs[0], file='gone.onnx')]).save(copy)
    with pytest.raises(ValueError, match='graph gone.onnx is missing'):
        FastestDetManifest.load(copy)
