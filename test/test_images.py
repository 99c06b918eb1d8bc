"""sensor_msgs image fields <-> arrays, every way an input image can be bad, the overlay."""

import io
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from adaptive_perception.detection.overlay import draw_overlay
from adaptive_perception.runtime.images import (
    BadImage,
    array_to_image_fields,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_image_fields,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (3, 5, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (3, 5, 1), dtype=np.uint8)
GRAY = RGB[:, :, :1]

ENCODED = {  # encoding -> (pixels as sent, RGB expected back)
    'rgb8': (RGB, RGB),
    'bgr8': (RGB[:, :, ::-1], RGB),
    'mono8': (GRAY, np.repeat(GRAY, 3, axis=2)),
    'rgba8': (np.concatenate([RGB, ALPHA], axis=2), RGB),
    'bgra8': (np.concatenate([RGB[:, :, ::-1], ALPHA], axis=2), RGB),
}


def fields(pixels: np.ndarray, padding: int = 0) -> dict:
    """Image fields for ``pixels`` (H, W, C) with ``padding`` junk bytes after each row."""
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels)
    junk = RNG.integers(0, 256, (height, padding), dtype=np.uint8)
    data = np.concatenate([rows, junk], axis=1).tobytes()
    return {'width': width, 'height': height, 'step': width * channels + padding,
            'data': data}


def encoded(image_format: str, rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format=image_format)
    return out.getvalue()


@pytest.mark.parametrize('encoding', ENCODED)
@pytest.mark.parametrize('padding', [0, 3])
def test_every_encoding_gives_rgb(encoding, padding):
    pixels, expected = ENCODED[encoding]
    rgb = image_to_rgb(encoding, **fields(pixels, padding))
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, expected)


def test_plain_rgb8_is_read_in_place_and_every_other_layout_copied():
    from array import array
    data = array('B', RGB.tobytes())
    rgb = image_to_rgb('rgb8', 5, 3, 15, data)
    assert np.shares_memory(rgb, np.frombuffer(data, np.uint8))
    padded = fields(RGB, 3)
    padded['data'] = array('B', padded['data'])
    for encoding, kwargs in [('rgb8', padded), ('bgr8', fields(RGB[:, :, ::-1]))]:
        source = array('B', kwargs['data'])
        out = image_to_rgb(encoding, **{**kwargs, 'data': source})
        assert not np.shares_memory(out, np.frombuffer(source, np.uint8))
        np.testing.assert_array_equal(out, RGB)


def test_rgb8_fields_round_trip():
    out = rgb_to_image_fields(RGB)
    assert (out['encoding'], out['width'], out['height'], out['step']) == ('rgb8', 5, 3, 15)
    np.testing.assert_array_equal(image_to_rgb(**{k: v for k, v in out.items()
                                                  if k != 'is_bigendian'}), RGB)


@pytest.mark.parametrize('encoding, array, dtype, channels', [
    ('mono8', RNG.integers(0, 256, (3, 5), dtype=np.uint8), '=u1', 1),
    ('32FC1', RNG.normal(size=(3, 5)).astype(np.float32), '=f4', 1),
    ('32FC3', RNG.normal(size=(3, 5, 3)).astype(np.float32), '=f4', 3),
])
def test_output_arrays_round_trip_through_image_fields(encoding, array, dtype, channels):
    out = array_to_image_fields(array, encoding)
    assert (out['encoding'], out['height'], out['width']) == (encoding, 3, 5)
    assert out['step'] == 5 * channels * np.dtype(dtype).itemsize
    assert out['is_bigendian'] == (sys.byteorder == 'big')
    order = '>' if out['is_bigendian'] else '<'
    back = np.frombuffer(out['data'], np.dtype(dtype).newbyteorder(order))
    np.testing.assert_array_equal(back.reshape(array.shape), array)


def test_output_arrays_take_only_copies_in_row_order():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = array_to_image_fields(depth.T, '32FC1')   # a non-contiguous view
    assert (out['height'], out['width'], out['step']) == (4, 3, 12)
    np.testing.assert_array_equal(np.frombuffer(out['data'], np.float32).reshape(4, 3), depth.T)


@pytest.mark.parametrize('array, encoding, message', [
    (np.zeros((3, 5), np.float32), 'mono8', 'mono8 needs a non-empty uint8 array (H, W)'),
    (np.zeros((3, 5, 1), np.uint8), 'mono8', 'got uint8 (3, 5, 1)'),
    (np.zeros((3, 5), np.float64), '32FC1', 'needs a non-empty float32'),
    (np.zeros((3, 5), np.float32), '32FC3', 'float32 array (H, W, 3), got float32 (3, 5)'),
    (np.zeros((3, 5, 4), np.float32), '32FC3', 'got float32 (3, 5, 4)'),
    (np.zeros((0, 5), np.uint8), 'mono8', 'non-empty'),
    (np.zeros((3, 5), np.uint16), '16UC1', "encoding '16UC1'"),
])
def test_output_arrays_that_do_not_fit_the_encoding_are_refused(array, encoding, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        array_to_image_fields(array, encoding)


def test_compressed_png_is_exact_and_jpeg_close():
    np.testing.assert_array_equal(compressed_to_rgb('png', encoded('PNG', RGB)), RGB)
    flat = np.full((16, 16, 3), (200, 40, 90), np.uint8)
    jpeg = compressed_to_rgb('rgb8; jpeg compressed bgr8', encoded('JPEG', flat))
    assert jpeg.shape == flat.shape
    assert np.abs(jpeg.astype(int) - flat).max() <= 3


@pytest.mark.parametrize('case, reason', [
    ({'encoding': '16UC1'}, "unsupported encoding '16UC1'"),
    ({'encoding': 'yuv422'}, 'unsupported encoding'),
    ({'width': 0}, 'zero-size image 0x3'),
    ({'height': 0, 'data': b''}, 'zero-size image 5x0'),
    ({'max_pixels': 14}, 'image 5x3 has 15 pixels, over max_pixels 14'),
    ({'width': 50_000, 'height': 50_000}, 'over max_pixels'),
    ({'step': 14}, 'step 14 is less than width x channels = 5 x 3'),
    ({'data': bytes(44)}, 'truncated data: 44 bytes, expected step x height = 15 x 3 = 45'),
    ({'data': bytes(46)}, 'data size mismatch: 46 bytes'),
])
def test_bad_raw_images_say_why(case, reason):
    kwargs = {'encoding': 'rgb8', **fields(RGB), **case}
    with pytest.raises(BadImage) as error:
        image_to_rgb(**kwargs)
    assert reason in error.value.reason


@pytest.mark.parametrize('data, reason', [
    (b'not an image at all', 'undecodable compressed image'),
    (b'', 'undecodable compressed image'),
    (encoded('JPEG', RGB)[:40], 'undecodable compressed image'),
    (encoded('JPEG', RGB)[:200], 'undecodable compressed image'),
    (encoded('GIF', RGB), 'compressed format GIF'),
], ids=['garbage', 'empty', 'cut-header', 'cut-data', 'gif'])
def test_bad_compressed_images_say_why(data, reason):
    with pytest.raises(BadImage) as error:
        compressed_to_rgb('jpeg', data)
    assert reason in error.value.reason


def test_huge_compressed_image_is_refused_before_decoding():
    png = encoded('PNG', np.zeros((300, 400, 3), np.uint8))
    with pytest.raises(BadImage, match='image 400x300 has 120000 pixels, over max_pixels'):
        compressed_to_rgb('png', png, max_pixels=100_000)


def test_overlay_draws_on_a_copy():
    rgb = np.zeros((40, 60, 3), np.uint8)
    box = SimpleNamespace(class_id=3, class_name='dog', score=0.87, x_min=10.0, y_min=12.0,
                          x_max=50.0, y_max=35.0)
    out = draw_overlay(rgb, [box])
    assert out.shape == rgb.shape and not rgb.any()
    assert out[35, 30].any() and out[20, 50].any()  # the box's bottom and right edges
    assert not out[25, 30].any()                     # its inside stays clear
