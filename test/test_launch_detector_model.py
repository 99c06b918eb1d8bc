"""detector_model:=scenes|coco and camera_source:=<path>: one YAML, both launchers."""

import pytest

from adaptive_perception.cli import build_parser
from adaptive_perception.detection.families import model_family
from adaptive_perception.launcher.plan import load_plan, share_dir


def detector(plan):
    return next(s for s in plan if s.name == 'adacon_detector')


def test_coco_points_the_detector_at_the_installed_coco_model_with_size_levels():
    spec = detector(load_plan(detector_model='coco'))
    assert spec.parameters['model_dir'] == str(share_dir() / 'models' / 'coco_fastestdet')
    assert model_family(spec.parameters['model_dir']) == 'fastestdet'
    assert spec.parameters['level_modes'] == ['static@352', 'static@288', 'static@224',
                                              'static@160']
    assert spec.parameters['threads'] == 1  # the node's other parameters stay


def test_scenes_is_the_default_and_leaves_the_adacon_detector_as_configured():
    assert detector(load_plan()) == detector(load_plan(detector_model='scenes')) == \
        detector(load_plan(detector_model=''))
    assert 'model_dir' not in detector(load_plan()).parameters


def test_a_real_camera_gets_the_coco_model_unless_told_otherwise():
    assert detector(load_plan(camera='none')) == detector(load_plan(detector_model='coco'))
    assert detector(load_plan(camera='none', detector_model='scenes')) == detector(load_plan())


def test_a_model_dir_pinned_in_the_file_is_kept_unless_a_model_is_asked_for(tmp_path):
    import yaml

    from adaptive_perception.paths import default_params_file
    document = yaml.safe_load(default_params_file().read_text())
    document['nodes']['adacon_detector']['parameters']['model_dir'] = str(tmp_path / 'mine')
    path = tmp_path / 'edge.yaml'
    path.write_text(yaml.safe_dump(document))
    assert detector(load_plan(path, camera='none')).parameters['model_dir'] == \
        str(tmp_path / 'mine')
    assert detector(load_plan(path, camera='none', detector_model='coco')).parameters[
        'model_dir'] == str(share_dir() / 'models' / 'coco_fastestdet')


def test_unknown_model_and_a_file_without_models_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match=r"one of \['coco', 'scenes'\], got 'yolo'"):
        load_plan(detector_model='yolo')
    path = tmp_path / 'edge.yaml'
    path.write_text('nodes:\n  budget_manager: {executable: budget_manager, role: core}\n')
    assert len(load_plan(path)) == 1
    with pytest.raises(ValueError, match='no detector_models section'):
        load_plan(path, detector_model='coco')


def test_camera_source_plays_a_folder_of_photos(tmp_path):
    plan = load_plan(detector_model='coco', camera_source=str(tmp_path))
    camera = next(s for s in plan if s.name == 'camera_source')
    assert camera.parameters['source'] == str(tmp_path)
    assert next(s for s in load_plan() if s.name == 'camera_source').parameters['source'] == \
        'generator'


def test_launch_edge_takes_the_same_arguments():
    args = build_parser().parse_args(['launch', 'edge', '--detector-model', 'coco',
                                      '--camera-source', 'photos', '--duration', '1'])
    assert (args.detector_model, args.camera_source) == ('coco', 'photos')
