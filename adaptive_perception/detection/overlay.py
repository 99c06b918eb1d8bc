"""The detector's debug overlay: boxes, class names and scores drawn on a frame (pure)."""

import cv2
import numpy as np


def _colour(class_id: int) -> tuple:
    """Pick a stable, bright colour for a class."""
    hue = (class_id * 47) % 180
    hsv = np.uint8([[[hue, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw_overlay(rgb: np.ndarray, detections) -> np.ndarray:
    """Draw each detection's box, class name and score on a copy of ``rgb``.

    ``detections``: objects with class_id, class_name, score, x_min .. y_max. Drawn
    from the lowest score up, so where labels overlap the more confident one is on top.
    """
    out = np.ascontiguousarray(rgb).copy()
    scale = max(0.35, min(out.shape[:2]) / 800)
    for d in sorted(detections, key=lambda d: d.score):
        colour = _colour(d.class_id)
        top_left = (int(round(d.x_min)), int(round(d.y_min)))
        cv2.rectangle(out, top_left, (int(round(d.x_max)), int(round(d.y_max))), colour, 1)
        label = f'{d.class_name} {d.score:.2f}'
        (w, h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x, y = top_left[0], max(top_left[1], h + 2)
        cv2.rectangle(out, (x, y - h - 2), (x + w, y), colour, -1)
        cv2.putText(out, label, (x, y - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return out
