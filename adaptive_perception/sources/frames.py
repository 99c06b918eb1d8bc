"""Where camera frames come from (pure, no rclpy): scenes, an image folder, a video, a camera.

Every source has ``read() -> RGB uint8 (H, W, 3)``, or None once a finite source
is over (folder and video restart instead while ``loop`` is true), and ``close()``.
"""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from adaptive_perception.detection.scenes import SceneGenerator

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


class GeneratorFrames:
    """Endless context scenes from the seeded scene generator."""

    def __init__(self, seed: int, image_size: int):
        self._generator = SceneGenerator(seed, image_size)
        self.loop = True

    def read(self) -> np.ndarray:
        """Render the next scene."""
        return self._generator.sample()[0]

    def close(self) -> None:
        """Nothing to release."""


class FolderFrames:
    """The .png and .jpg files of a folder, in sorted name order."""

    def __init__(self, folder: Path, loop: bool):
        self.files = sorted(p for p in Path(folder).iterdir()
                            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise ValueError(f'{folder}: no {"/".join(IMAGE_SUFFIXES)} images')
        self.loop = loop
        self._next = 0

    def read(self) -> np.ndarray | None:
        """Load the next image; ValueError names a file that cannot be read."""
        if self._next >= len(self.files):
            if not self.loop:
                return None
            self._next = 0
        path = self.files[self._next]
        self._next += 1
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert('RGB'))
        except OSError as error:
            raise ValueError(f'{path}: {error}') from None

    def close(self) -> None:
        """Nothing to release."""


class VideoFrames:
    """The frames of a video file, through OpenCV."""

    def __init__(self, path: Path, loop: bool):
        self.path = Path(path)
        self.loop = loop
        self._capture = self._open()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise ValueError(f'{self.path}: cannot be opened as a video')
        return capture

    def read(self) -> np.ndarray | None:
        """Decode the next frame; at the end, reopen the file if looping."""
        ok, bgr = self._capture.read()
        if not ok and self.loop:  # reopening works for every container, seeking not
            self._capture.release()
            self._capture = self._open()
            ok, bgr = self._capture.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None

    def close(self) -> None:
        """Release the decoder."""
        self._capture.release()


class CameraDeviceFrames:
    """A V4L2 camera (``/dev/video0`` or an index such as ``0``), through OpenCV."""

    def __init__(self, device: str | int):
        self.device = device
        self.loop = True
        self._capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
        if not self._capture.isOpened():
            self._capture.release()
            raise ValueError(f'camera {device!r} cannot be opened (V4L2 through OpenCV): '
                             f'no such device, busy, or no permission (video group?)')

    def read(self) -> np.ndarray:
        """Grab the next frame; ValueError when the camera gives none (unplugged)."""
        ok, bgr = self._capture.read()
        if not ok:
            raise ValueError(f'camera {self.device!r} gave no frame')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        """Release the device."""
        self._capture.release()


def open_source(source: str, seed: int = 0, image_size: int = 128, loop: bool = True):
    """Open 'generator', a folder of images, a video file or a camera device.

    A camera is a V4L2 device path (``/dev/video0``) or an integer index (``0``).
    ValueError says what was expected or why the device did not open.
    """
    if source == 'generator':
        return GeneratorFrames(seed, image_size)
    if source.strip().isdigit():
        return CameraDeviceFrames(int(source))
    if source.startswith('/dev/'):
        return CameraDeviceFrames(source)
    path = Path(source).expanduser()
    if path.is_dir():
        return FolderFrames(path, loop)
    if path.is_file():
        return VideoFrames(path, loop)
    raise ValueError(f"source {source!r}: expected 'generator', a folder of images, a "
                     f'video file or a camera (/dev/videoN or an index)')
