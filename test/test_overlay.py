"""The debug overlay: where two labels overlap, the higher score is drawn on top."""

from types import SimpleNamespace

import numpy as np

from adaptive_perception.detection.overlay import _colour, draw_overlay


def _detection(class_id, score):
    return SimpleNamespace(class_id=class_id, class_name='x', score=score,
                           x_min=20.0, y_min=20.0, x_max=60.0, y_max=60.0)


def test_the_higher_score_is_drawn_on_top_whatever_the_order():
    rgb = np.zeros((100, 100, 3), np.uint8)
    low, high = _detection(1, 0.3), _detection(2, 0.9)
    for order in ([low, high], [high, low]):
        out = draw_overlay(rgb, order)
        # the box edge at the same place: the winner's colour
        assert tuple(out[40, 20]) == _colour(2), order
