"""One manifest base for every family: shipped folders load as they are, errors name the file."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from adaptive_perception.activity.classifier import ActivityManifest
from adaptive_perception.detection.fastestdet.manifest import FastestDetManifest
from adaptive_perception.detection.manifest import Manifest
from adaptive_perception.multitask.manifest import MultitaskManifest, read_manifest, write_manifest
from adaptive_perception.runtime.manifest import ModelManifest

MODELS = Path(__file__).resolve().parents[1] / 'models'
FAMILIES = [(Manifest, 'adacon'), (FastestDetManifest, 'coco_fastestdet'),
            (ActivityManifest, 'activity'), (MultitaskManifest, 'adamtl')]


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


def test_an_adamtl_manifest_names_its_tasks_decoders_and_int8_copies(tmp_path):
    copy = tmp_path / 'adamtl'
    shutil.copytree(MODELS / 'adamtl', copy, ignore=shutil.ignore_patterns('*.png', '*.md'))
    manifest = MultitaskManifest.load(copy)
    assert manifest.tasks == ('segmentation', 'depth', 'normals', 'saliency')
    assert manifest.precisions == ('fp32', 'int8')
    assert len(manifest.class_names) == 7
    decoders = {k: v for k, v in manifest.decoders.items() if k != 'depth'}
    replace(manifest, decoders=decoders).save(copy)
    with pytest.raises(ValueError, match='manifest.json: no decoder for depth'):
        MultitaskManifest.load(copy)
    graphs = {k: v for k, v in manifest.int8['graphs'].items() if k != 'decoders'}
    replace(manifest, int8={**manifest.int8, 'graphs': graphs}).save(copy)
    with pytest.raises(ValueError, match='no INT8 copy of decoders'):
        MultitaskManifest.load(copy)
    replace(manifest, graphs={**manifest.graphs, 'decoders': 'gone.onnx'}).save(copy)
    with pytest.raises(ValueError, match='graph gone.onnx is missing'):
        MultitaskManifest.load(copy)


def test_adamtl_json_values_edited_in_place_go_back_whole(tmp_path):
    """``train adamtl-references`` edits the JSON values and keeps its progress in them."""
    copy = tmp_path / 'adamtl'
    shutil.copytree(MODELS / 'adamtl', copy, ignore=shutil.ignore_patterns('*.png', '*.md'))
    data = read_manifest(copy)
    assert data == json.loads((MODELS / 'adamtl' / 'manifest.json').read_text())
    data['single_task_progress'] = {'scores': {'depth': 0.5}}
    write_manifest(data, copy)
    assert MultitaskManifest.load(copy).single_task_progress == {'scores': {'depth': 0.5}}
    data.pop('single_task_progress')
    data.pop('int8')
    write_manifest(data, copy)
    written = json.loads((copy / 'manifest.json').read_text())
    assert 'int8' not in written and 'single_task_progress' not in written  # left out empty
    assert MultitaskManifest.load(copy).precisions == ('fp32',)
