"""The trainers' shared schedule and checkpoint I/O (adaptive_perception.training)."""

import math

import pytest
import torch

from adaptive_perception.detection import train as adacon_train
from adaptive_perception.multitask import train as adamtl_train
from adaptive_perception.training import load_checkpoint, save_checkpoint, warmup_cosine


def factors(total: int, warmup: int, clamp: bool, steps: int) -> list:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = warmup_cosine(optimizer, total, warmup, clamp=clamp)
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    return seen


def test_the_schedule_warms_up_linearly_then_decays_to_zero_at_the_last_step():
    seen = factors(total=20, warmup=4, clamp=True, steps=20)
    assert seen[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert seen[4] == pytest.approx(1.0) and seen[12] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(seen[4:-1], seen[5:], strict=True))


def test_past_the_last_step_the_clamped_schedule_stays_at_zero_and_the_other_rises():
    # AdaMTL stages clamp; AdaCon stages keep the unclamped cosine they were trained with.
    clamped = factors(total=10, warmup=2, clamp=True, steps=16)
    free = factors(total=10, warmup=2, clamp=False, steps=16)
    assert clamped[:11] == pytest.approx(free[:11])
    assert clamped[10:] == pytest.approx([0.0] * 6)
    assert free[14] == pytest.approx(0.5 * (1 + math.cos(math.pi * 12 / 8))) and free[14] > 0.1


def test_save_writes_the_whole_file_and_load_names_what_is_wrong(tmp_path):
    path = save_checkpoint({'format': 'x/2', 'weights': torch.ones(2)}, tmp_path / 'c.pt')
    assert [p.name for p in tmp_path.iterdir()] == ['c.pt']
    assert torch.equal(load_checkpoint(path, ('x/2', 'x/1'), 'X')['weights'], torch.ones(2))
    with pytest.raises(ValueError, match=r'c.pt: not an Y checkpoint \(y/1\)'):
        load_checkpoint(path, ('y/1',), 'Y')
    (tmp_path / 'junk.pt').write_bytes(b'not torch')
    with pytest.raises(ValueError, match='cannot read the checkpoint'):
        load_checkpoint(tmp_path / 'junk.pt', ('x/2',), 'X')
    with pytest.raises(ValueError, match='cannot read the checkpoint'):
        load_checkpoint(tmp_path / 'missing.pt', ('x/2',), 'X')
    with pytest.raises(ValueError, match='names its format'):
        save_checkpoint({'weights': 1}, tmp_path / 'd.pt')


def test_an_adacon_checkpoint_of_the_single_width_format_still_loads_for_stage_1(tmp_path):
    weights = {'backbone.conv.weight': torch.ones(2), 'static_head.out.weight': torch.zeros(3),
               'branches.0.weight': torch.ones(1)}
    old = tmp_path / 'old.pt'
    torch.save({'format': 'adacon-checkpoint/1', 'state_dict': weights}, old)
    checkpoint, stage1 = adacon_train._stage1_weights(old)
    assert checkpoint['format'] == 'adacon-checkpoint/1'
    assert sorted(stage1) == ['backbone.conv.weight', 'static_head.out.weight']
    new = save_checkpoint({'format': adacon_train.CHECKPOINT_FORMAT,
                           'state_dict': {f'full.{k}': v for k, v in weights.items()}},
                          tmp_path / 'new.pt')
    assert sorted(adacon_train._stage1_weights(new)[1]) == sorted(stage1)
    torch.save({'format': 'adaptive_perception.adamtl/1'}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match='not an AdaCon checkpoint'):
        adacon_train._stage1_weights(tmp_path / 'other.pt')


def test_an_adamtl_checkpoint_says_when_it_lacks_its_static_stage(tmp_path):
    path = save_checkpoint({'format': adamtl_train.CHECKPOINT_FORMAT}, tmp_path / 'a.pt')
    assert adamtl_train.read_checkpoint(path) == {'format': adamtl_train.CHECKPOINT_FORMAT}
    with pytest.raises(ValueError, match='without its static stage'):
        adamtl_train.read_checkpoint(path, with_stage1=True)
