"""Image files in and out through OpenCV's in-memory codecs, and what their headers say.

``cv2.imread`` and ``cv2.imwrite`` hand the path to C++ as a string: a file name that is not
valid UTF-8 crashed the process (a segfault in OpenCV 5.0). Here Python opens the file and
OpenCV only decodes or encodes bytes, so any name Python can open works. Reads also refuse
anything that is not a regular file (a FIFO named ``x.png`` would block ``open`` for ever) and
turn OpenCV's own refusals (its pixel-count limit against decompression bombs) into ``None``.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib

import cv2
import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: A PNG chunk's length, type and CRC-32 take 12 bytes around its data.
_CHUNK_FRAME = 12
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


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
    ok, data = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OSError(f"could not encode a PNG for {path}")
    with open(path, "wb") as handle:
        handle.write(data.tobytes())


def png_is_whole(data: bytes) -> bool:
    """Whether PNG bytes are whole as blurgen writes them: the signature, then chunks named by four
    ASCII letters, each matching its CRC-32, up to an empty IEND. Checked before libpng decodes
    one of blurgen's PNGs that may be damaged: libpng prints its own error and warning lines on
    stderr (OpenCV does not silence them) and finds damage in an IDAT only where the compressed
    stream happens to break. Stricter than libpng, which takes an ancillary chunk with a bad CRC
    (with a warning): for a file blurgen wrote that too is damage.

    >>> ok, png = cv2.imencode(".png", np.zeros((2, 2, 3), np.uint8))
    >>> png_is_whole(png.tobytes()), png_is_whole(png.tobytes()[:-1])
    (True, False)
    """
    view = memoryview(data)
    if bytes(view[:8]) != _PNG_SIGNATURE:
        return False
    at = 8
    while at + _CHUNK_FRAME <= len(view):
        length = int.from_bytes(view[at:at + 4], "big")
        end = at + _CHUNK_FRAME + length
        kind = bytes(view[at + 4:at + 8])
        if end > len(view) or not (kind.isascii() and kind.isalpha()):
            return False
        if zlib.crc32(view[at + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            return False
        if kind == b"IEND":
            return length == 0
        at = end
    return False


def _png_header(head: bytes) -> tuple[int, int, int, int] | None:
    """(height, width, channels, bit depth) from a PNG's IHDR, or None if it is not one."""
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour)
    if channels is None or width == 0 or height == 0:
        return None
    return height, width, channels, depth


def _jpeg_header(path: str) -> tuple[int, int, int, int] | None:
    """(height, width, channels, bit depth) from a JPEG's SOF segment, or None."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return None
        while True:
            marker = f.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                return None
            kind = marker[1]
            if kind == 0xFF:  # fill byte: resynchronise on the next one
                f.seek(-1, os.SEEK_CUR)
                continue
            if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
                continue
            raw = f.read(2)
            if len(raw) < 2:
                return None
            length = struct.unpack(">H", raw)[0]
            if kind in _JPEG_SOF:
                sof = f.read(6)
                if len(sof) < 6:
                    return None
                depth, height, width, channels = struct.unpack(">BHHB", sof)
                return (height, width, channels, depth) if height and width else None
            if kind == 0xD9 or length < 2:
                return None
            f.seek(length - 2, os.SEEK_CUR)


def decode_usable(path: str) -> np.ndarray | None:
    """The decoded image (OpenCV layout), or None if it does not decode or ``to_rgb_u8`` cannot
    convert its layout (e.g. an int32 TIFF)."""
    image = decode_file(path)
    return None if image is None or to_rgb_u8(image[:1, :1]) is None else image


def probe_image(path: str) -> tuple[int, int, int, int] | None:
    """(height, width, channels, bit depth) of an image file, or None if it is unreadable."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO named x.png would block open()
            return None
        if ext == ".png":
            with open(path, "rb") as f:
                return _png_header(f.read(26))
        if ext in (".jpg", ".jpeg"):
            return _jpeg_header(path)
    except (OSError, struct.error):
        return None
    image = decode_usable(path)
    if image is None:
        return None
    channels = 1 if image.ndim == 2 else image.shape[2]
    return image.shape[0], image.shape[1], channels, 8 * image.dtype.itemsize


def to_rgb_u8(image: np.ndarray) -> np.ndarray | None:
    """An OpenCV-decoded image (BGR/BGRA/gray, uint8/uint16/float) -> uint8 RGB (H, W, 3), or
    None for layouts that are not images (e.g. 2 channels). Alpha is dropped, not composited:
    the colour under transparent pixels is whatever the file stores."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        return None
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        return None
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, 2::-1])
