"""Image files in and out through OpenCV's in-memory codecs.

``cv2.imread`` and ``cv2.imwrite`` hand the path to C++ as a string: a file name that is not
valid UTF-8 crashed the process (a segfault in OpenCV 5.0). Here Python opens the file and
OpenCV only decodes or encodes bytes, so any name Python can open works. Reads also refuse
anything that is not a regular file (a FIFO named ``x.png`` would block ``open`` for ever) and
turn OpenCV's own refusals (its pixel-count limit against decompression bombs) into ``None``.
"""

from __future__ import annotations

import os
import stat

import cv2
import numpy as np


def decode_file(path: str, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray | None:
    """The decoded image (OpenCV layout: BGR/BGRA/gray, any depth), or None if ``path`` is not a
    readable regular file holding an image OpenCV decodes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read()
    except OSError:
        return None
    finally:
        os.close(fd)
    if not data:
        return None
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None
    return None if image is None or image.size == 0 else image


def read_rgb(path: str) -> np.ndarray | None:
    """uint8 ``(H, W, 3)`` RGB, or None if the file cannot be decoded. Grey images become RGB,
    alpha is dropped, 16-bit images are scaled to 8 bits (OpenCV's ``IMREAD_COLOR``)."""
    image = decode_file(path, cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_png(path: str, rgb: np.ndarray, compression: int = 3) -> None:
    """Write uint8 RGB ``(H, W, 3)`` as a PNG file. Raises ``OSError`` on failure."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]),
                            [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OSError(f"could not encode a PNG for {path}")
    with open(path, "wb") as handle:
        handle.write(data.tobytes())
