"""png_is_whole: the check run before libpng decodes one of blurgen's PNGs (inspect), so a
damaged image is reported as a problem line without libpng's own lines on stderr."""

from __future__ import annotations

import importlib.util
import struct
import zlib

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


def test_every_single_bit_flip_fails_also_in_chunk_names_and_ancillary_chunks(png):
    """A flipped case bit once turned IDAT into an 'ancillary' iDAT whose CRC went unchecked."""
    iend = png.rindex(b"IEND") - 4
    with_text = png[:iend] + _chunk(b"tEXt", b"Comment\0blurgen") + png[iend:]
    assert png_is_whole(with_text)
    for data in (png, with_text):
        for at in range(8, len(data)):
            for bit in range(8):
                damaged = bytearray(data)
                damaged[at] ^= 1 << bit
                assert not png_is_whole(bytes(damaged)), (at, bit)


def test_a_bad_ancillary_crc_an_odd_chunk_name_or_an_iend_with_data_fail(png):
    iend = png.rindex(b"IEND") - 4
    assert not png_is_whole(png[:iend] + _chunk(b"tEXt", b"Comment\0x", crc=1) + png[iend:])
    assert not png_is_whole(png[:iend] + _chunk(b"tE1t", b"x") + png[iend:])
    assert not png_is_whole(png[:iend] + _chunk(b"IEND", b"x"))
    assert png_is_whole(png + b"trailing bytes")  # as libpng: nothing after IEND is read


@pytest.mark.skipif(importlib.util.find_spec("fpng") is None, reason="fpng not installed (blurgen[fastpng])")
def test_fpng_pngs_are_whole_and_a_flip_in_their_ancillary_chunk_fails():
    image = np.random.default_rng(1).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    data = encode_png(image, 1, "fpng")
    assert png_is_whole(data)
    chunks = [data[at + 4:at + 8] for at in _chunk_starts(data)]
    for at in _chunk_starts(data):
        if data[at + 4:at + 5].islower():  # fpng's own ancillary chunk
            damaged = bytearray(data)
            damaged[at + 9] ^= 1
            assert not png_is_whole(bytes(damaged))
    assert b"IDAT" in chunks


def _chunk_starts(data: bytes) -> list[int]:
    starts, at = [], 8
    while at < len(data):
        starts.append(at)
        at += 12 + int.from_bytes(data[at:at + 4], "big")
    return starts


def test_decode_png_refuses_a_damaged_png_with_a_value_error(png, capfd):
    damaged = bytearray(png)
    damaged[len(png) // 2] ^= 0x55
    with pytest.raises(ValueError, match="not a whole PNG"):
        decode_png(bytes(damaged))
    assert capfd.readouterr().err == ""  # libpng never saw it
