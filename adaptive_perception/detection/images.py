"""Camera images in and out of ``sensor_msgs`` fields, without cv_bridge (pure, no rclpy).

Inputs come from other processes and may be wrong in every way a message can be:
each problem raises ``BadImage`` with a reason a person can act on, before any
pixel is touched. Outputs are rgb8 fields and a debug overlay.
"""

import io
from array import array

import cv2
import numpy as np
from PIL import Image

# encoding -> (channels, channel order to get RGB); only 8-bit encodings.
ENCODINGS = {'rgb8': (3, [0, 1, 2]), 'bgr8': (3, [2, 1, 0]), 'mono8': (1, [0, 0, 0]),
             'rgba8': (4, [0, 1, 2]), 'bgra8': (4, [2, 1, 0])}
COMPRESSED_FORMATS = {'JPEG': 'jpeg', 'PNG': 'png'}
MAX_PIXELS = 4096 * 4096


class BadImage(ValueError):
    """An input image that cannot be used; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise BadImage(f'zero-size image {width}x{height}')
    if width * height > max_pixels:
        raise BadImage(f'image {width}x{height} has {width * height} pixels, over '
                       f'max_pixels {max_pixels}')


def image_to_rgb(encoding: str, width: int, height: int, step: int, data,
                 max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/Image`` fields -> RGB uint8 (height, width, 3), a copy.

    ``data`` is anything with the buffer protocol (the message's array, bytes).
    Rows may be padded (``step`` > width x channels); ``is_bigendian`` does not
    matter for 8-bit encodings, the only ones accepted.
    """
    if encoding not in ENCODINGS:
        raise BadImage(f'unsupported encoding {encoding!r}; supported: '
                       f'{", ".join(ENCODINGS)}')
    _check_size(width, height, max_pixels)
    channels, order = ENCODINGS[encoding]
    if step < width * channels:
        raise BadImage(f'step {step} is less than width x channels = {width} x {channels}')
    buffer = np.frombuffer(data, np.uint8)
    if buffer.size != step * height:
        what = 'truncated data' if buffer.size < step * height else 'data size mismatch'
        raise BadImage(f'{what}: {buffer.size} bytes, expected step x height = '
                       f'{step} x {height} = {step * height}')
    pixels = buffer.reshape(height, step)[:, :width * channels].reshape(height, width, channels)
    return np.ascontiguousarray(pixels[:, :, order])


def compressed_to_rgb(fmt: str, data, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg or png) -> RGB uint8 (height, width, 3).

    The size is read from the file header and checked before anything is decoded.
    The message's ``format`` ('jpeg', 'png', 'rgb8; jpeg compressed bgr8', ...) is
    only reported: the bytes say what they are, and anything but JPEG or PNG is refused.
    """
    try:
        image = Image.open(io.BytesIO(bytes(data)))
    except Image.DecompressionBombError as error:
        raise BadImage(f'compressed image too large: {error}') from None
    except OSError as error:  # not an image, or its header is cut short
        raise BadImage(f'undecodable compressed image (format {fmt!r}, '
                       f'{len(data)} bytes): {error}') from None
    if image.format not in COMPRESSED_FORMATS:
        raise BadImage(f'compressed format {image.format} (declared {fmt!r}) is not '
                       f'jpeg or png')
    _check_size(image.width, image.height, max_pixels)
    try:
        return np.asarray(image.convert('RGB'))
    except (OSError, ValueError) as error:  # a valid header with broken data
        raise BadImage(f'undecodable compressed image (format {fmt!r}): {error}') from None


def rgb_to_image_fields(rgb: np.ndarray) -> dict:
    """RGB uint8 (H, W, 3) -> keyword arguments for ``sensor_msgs/Image`` (rgb8).

    ``data`` is an ``array('B')``: the message takes it without checking every byte.
    """
    height, width = rgb.shape[:2]
    return {'encoding': 'rgb8', 'height': height, 'width': width, 'step': width * 3,
            'is_bigendian': 0, 'data': array('B', np.ascontiguousarray(rgb).tobytes())}


def _colour(class_id: int) -> tuple:
    """Pick a stable, bright colour for a class."""
    hue = (class_id * 47) % 180
    hsv = np.uint8([[[hue, 220, 255]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw_overlay(rgb: np.ndarray, detections) -> np.ndarray:
    """Draw each detection's box, class name and score on a copy of ``rgb``.

    ``detections``: objects with class_id, class_name, score, x_min .. y_max.
    """
    out = np.ascontiguousarray(rgb).copy()
    scale = max(0.35, min(out.shape[:2]) / 800)
    for d in detections:
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
