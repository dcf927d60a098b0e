"""The few tar records a block tar is made of, written and read without ``tarfile``.

A block tar (``blurgen.runs.samples``) is a POSIX.1-2001 (pax) archive: a global pax header (the
run it belongs to), then per member an extended pax header (its CRC-32) and a ustar header, the
data padded to 512 bytes, two zero blocks, the whole padded to 10,240 bytes -- the layout
``tarfile.open(..., format=tarfile.PAX_FORMAT)`` writes, read by ``tarfile``, GNU tar and
WebDataset (tested). ``tarfile`` spent ~0.2 ms per member building or parsing those headers
(``TarInfo.tobuf`` alone 70 us; ~0.7 ms per pair of four members, ~10 % of encoding its two
PNGs), in the workers that write the blocks and again in the driver that reads them; the headers
are built and parsed here in a few microseconds.
"""

from __future__ import annotations

import functools
from typing import BinaryIO, Iterator

BLOCK = 512
RECORD = 20 * BLOCK
_PAX_NAME = b"././@PaxHeader"
_MAGIC = b"ustar\x0000"
_REGULAR = (b"0", b"\0")


class TarFormatError(ValueError):
    """Not a tar this module wrote (a damaged header, an unexpected member type, cut data)."""


def _octal(value: int, digits: int) -> bytes:
    if not 0 <= value < 8 ** (digits - 1):
        raise ValueError(f"{value} does not fit a {digits}-byte tar field")
    return b"%0*o\0" % (digits - 1, value)


def header(name: bytes, size: int, kind: bytes = b"0", mode: int = 0o644) -> bytes:
    """One 512-byte ustar header (uid, gid, mtime 0; no owner names or device numbers), byte for byte
    what ``tarfile`` writes for such a member. Only the name and the size vary between a block's
    members: the other fields and their share of the checksum come from ``_fixed_fields``."""
    if len(name) > 100:
        raise ValueError(f"tar member name longer than 100 bytes: {name!r}")
    ids, tail, fixed_sum = _fixed_fields(kind, mode)
    size_field = _octal(size, 12)
    # the checksum counts its own field as 8 spaces (in fixed_sum), then holds 6 octal digits, NUL, space
    checksum = fixed_sum + sum(name) + sum(size_field)
    return b"".join((name.ljust(100, b"\0"), ids, size_field, tail[:12], b"%06o\0 " % checksum, tail[20:]))


@functools.lru_cache(maxsize=8)
def _fixed_fields(kind: bytes, mode: int) -> tuple[bytes, bytes, int]:
    """The header fields of a member of ``kind`` and ``mode`` that do not depend on its name or
    size: mode, uid, gid (bytes 100-124); mtime, the blank checksum, the type, the link name, the
    magic and the zeros to 512 bytes (136-512); and the sum of their bytes."""
    ids = _octal(mode, 8) + _octal(0, 8) + _octal(0, 8)
    tail = (_octal(0, 12) + b" " * 8 + kind + b"\0" * 100 + _MAGIC).ljust(BLOCK - 136, b"\0")
    return ids, tail, sum(ids) + sum(tail)


def padding(size: int) -> bytes:
    """NUL bytes that end data of ``size`` bytes on a 512-byte boundary."""
    return b"\0" * (-size % BLOCK)


def pax_records(values: dict[str, str]) -> bytes:
    """``"LENGTH key=value\\n"`` records (LENGTH counts the whole record, itself included)."""
    out = []
    for key, value in values.items():
        body = b" " + key.encode("utf-8") + b"=" + value.encode("utf-8") + b"\n"
        length = len(body)
        while len(str(length)) + len(body) != length:
            length = len(str(length)) + len(body)
        out.append(str(length).encode("ascii") + body)
    return b"".join(out)


def pax_header(values: dict[str, str], kind: bytes = b"x") -> bytes:
    """An extended (``x``, the next member's) or global (``g``) pax header with its records."""
    records = pax_records(values)
    return header(_PAX_NAME, len(records), kind, mode=0) + records + padding(len(records))


def member(name: str, size: int, pax: dict[str, str] | None = None) -> bytes:
    """The headers that go before a regular file's ``size`` data bytes (then ``padding(size)``)."""
    head = header(name.encode("utf-8"), size)
    return pax_header(pax) + head if pax else head


def end_of_archive(offset: int) -> bytes:
    """Two zero blocks, then zeros up to a whole 10,240-byte record (``offset``: bytes so far)."""
    total = offset + 2 * BLOCK
    return b"\0" * (2 * BLOCK + (-total % RECORD))


def _parse_octal(field: bytes) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"bad number field {field!r}") from None


def _parse_pax(data: bytes) -> dict[str, str]:
    values, at = {}, 0
    while at < len(data) and data[at:at + 1] != b"\0":
        space = data.find(b" ", at)
        try:
            length = int(data[at:space])
        except ValueError:
            raise TarFormatError("bad pax record") from None
        record = data[space + 1:at + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise TarFormatError("bad pax record")
        key, _, value = record[:-1].partition(b"=")
        values[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        at += length
    return values


def _read_exact(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise TarFormatError("unexpected end of data")
    return data


def _next_header(handle: BinaryIO) -> tuple[bytes, str, int] | None:
    """``(type, name, size)`` of the next header, None at the end of the archive."""
    head = handle.read(BLOCK)
    if len(head) < BLOCK or head.count(0) == BLOCK:
        return None  # end-of-archive blocks, or a tar cut at a member boundary (tarfile agrees)
    if _parse_octal(head[148:156]) != sum(head[:148]) + 256 + sum(head[156:]):
        raise TarFormatError("bad header checksum")
    name = head[:100].split(b"\0", 1)[0]
    if head[257:263] == b"ustar\0" and head[345] != 0:
        name = head[345:500].split(b"\0", 1)[0] + b"/" + name
    return head[156:157], name.decode("utf-8", "surrogateescape"), _parse_octal(head[124:136])


def read_members(handle: BinaryIO, globals_out: dict[str, str]) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """Yield ``(name, data, pax headers)`` of each regular file of an open tar; the global pax
    headers go into ``globals_out`` as they are read. ``TarFormatError`` for anything else."""
    extended: dict[str, str] = {}
    while (found := _next_header(handle)) is not None:
        kind, name, size = found
        size = int(extended.get("size", size))
        data = _read_exact(handle, size)
        handle.seek(-size % BLOCK, 1)
        if kind in (b"x", b"g"):
            (extended if kind == b"x" else globals_out).update(_parse_pax(data))
            continue
        if kind not in _REGULAR:
            raise TarFormatError(f"member {name!r} of type {kind!r} is not a regular file")
        yield extended.get("path", name), data, extended
        extended = {}
