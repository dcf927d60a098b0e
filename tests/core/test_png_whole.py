"""png_is_whole: the check run before libpng decodes one of blurgen's PNGs (inspect), so a
damaged image is reported as a problem line without libpng's own lines on stderr."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from blurgen.core.imageio import png_is_whole
from blurgen.runs.samples import decode_png, encode_png


@pytest.fixture(scope="module")
def png():
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    return encode_png(image, 1)


def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def test_a_whole_png_passes_and_any_flipped_byte_after_the_signature_fails(png):
    assert png_is_whole(png)
    for at in range(8, len(png), 7):
        damaged = bytearray(png)
        damaged[at] ^= 0x10
        assert not png_is_whole(bytes(damaged)), at


def test_cut_short_or_not_a_png_fails(png):
    for size in (0, 7, 8, 20, len(png) // 2, len(png) - 12, len(png) - 1):
        assert not png_is_whole(png[:size]), size
    assert not png_is_whole(b"GIF89a" + png[6:])


def test_an_ancillary_chunk_with_a_bad_crc_is_left_to_libpng(png):
    """libpng discards such a chunk and decodes the image: the check must not refuse it."""
    iend = png.rindex(b"IEND") - 4
    odd = png[:iend] + _chunk(b"tEXt", b"Comment\0x", crc=1) + png[iend:]
    assert png_is_whole(odd)
    assert cv2.imdecode(np.frombuffer(odd, np.uint8), cv2.IMREAD_COLOR) is not None


def test_decode_png_refuses_a_damaged_png_with_a_value_error(png, capfd):
    damaged = bytearray(png)
    damaged[len(png) // 2] ^= 0x55
    with pytest.raises(ValueError, match="not a whole PNG"):
        decode_png(bytes(damaged))
    assert capfd.readouterr().err == ""  # libpng never saw it
