"""Block tars are written and read without tarfile (blurgen.runs.block_tar): the bytes are what
tarfile writes for the same members, tarfile reads them, and damage is refused."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import tarfile
import zlib

import pytest

from blurgen.runs import block_tar, samples

STAMP = {"config": {"width": 16}, "seed": 3}
MEMBERS = [("00000005.blur.png", os.urandom(1000), None), ("00000005.json", b'{"gain": 1.5}', {"gain": "<f4"}),
           ("00000006.blur.png", b"", None), ("00000006.kernel.npy", os.urandom(512), None)]


def _ours(folder) -> str:
    writer = samples.BlockTarWriter(str(folder), 5, 2, STAMP)
    for name, data, dtypes in MEMBERS:
        writer.add(name, data, dtypes)
    tmp, _ = writer.close()
    return tmp


def _tarfiles() -> bytes:
    out = io.BytesIO()
    stamp = {"blurgen.block": json.dumps({"start": 5, "count": 2, **STAMP}, sort_keys=True)}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers=stamp) as tar:
        for name, data, dtypes in MEMBERS:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            note = f"blurgen.crc32={zlib.crc32(data)}"
            if dtypes is not None:
                note += f" blurgen.dtypes={json.dumps(dtypes, sort_keys=True)}"
            info.pax_headers = {"comment": note}
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_the_writer_makes_tarfiles_bytes_and_the_reader_reads_them(tmp_path):
    path = _ours(tmp_path)
    assert open(path, "rb").read() == _tarfiles()
    with tarfile.open(path) as tar:
        assert [(m.name, tar.extractfile(m).read()) for m in tar] == [(n, d) for n, d, _ in MEMBERS]
    read = list(samples.read_block_tar(path, 5, 2, STAMP))
    assert [(n, d, t) for n, d, t in read] == MEMBERS


@pytest.mark.parametrize("name,size", [("a", 0), ("00000001.blur.png", 123456), ("n" * 100, 8 ** 11 - 1),
                                       ("\u00e9t\u00e9.json", 7), ("\x7f" * 100, 511)])
def test_a_header_is_the_ustar_header_tarfile_writes(name, size):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    assert block_tar.header(name.encode("utf-8"), size) == info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")


def test_a_pax_record_length_counts_itself_across_a_digit_edge():
    for size in range(90, 100):  # records of 97 to 107 bytes: 2 then 3 length digits
        record = block_tar.pax_records({"k": "v" * size})
        assert int(record.split(b" ", 1)[0]) == len(record)


@pytest.mark.parametrize("damage", ["header checksum", "cut data", "directory member"])
def test_damaged_tars_are_refused_as_damaged_blocks(tmp_path, damage):
    path = _ours(tmp_path)
    data = bytearray(open(path, "rb").read())
    if damage == "header checksum":
        data[1024 + 3] ^= 1  # the first member's pax header's name
    elif damage == "cut data":
        data = data[:1024 + 512 + 512 + 512 + 300]  # inside the first member's data
    else:
        at = 1024 + 1024  # the first member's ustar header, made a directory
        data[at + 156:at + 157] = b"5"
        data[at + 148:at + 156] = b"%06o\0 " % (sum(data[at:at + 148]) + 256 + sum(data[at + 156:at + 512]))
    open(path, "wb").write(bytes(data))
    with pytest.raises(samples.BlockFileError, match="unreadable block|damaged|holds"):
        list(samples.read_block_tar(path, 5, 2, STAMP))


def test_short_writes_still_make_tarfiles_bytes(tmp_path, monkeypatch):
    real = os.writev

    def at_most_700_bytes(fd, parts):
        data = b"".join(bytes(part) for part in parts)[:700]
        return real(fd, [data])

    monkeypatch.setattr(os, "writev", at_most_700_bytes)
    path = _ours(tmp_path)
    monkeypatch.undo()
    assert open(path, "rb").read() == _tarfiles()


def test_a_write_that_takes_nothing_is_a_full_disk_and_leaves_no_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "writev", lambda fd, parts: 0)
    with pytest.raises(samples.DiskFullError):
        _ours(tmp_path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_a_writer_dropped_without_close_releases_its_file(tmp_path):
    writer = samples.BlockTarWriter(str(tmp_path), 5, 2, STAMP)
    fd = writer._fd
    os.fstat(fd)  # open
    del writer
    with pytest.raises(OSError):
        os.fstat(fd)


def test_a_full_disk_at_the_create_of_a_file_writers_tar_is_a_full_disk(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    real = os.open

    def no_space_for_temporaries(path, *args, **kwargs):
        if ".tmp-" in os.fspath(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_space_for_temporaries)
    with pytest.raises(samples.DiskFullError):  # was EBADF: the folder's descriptor closed twice
        samples.FileBlockWriter(str(tmp_path), 5, 2, STAMP, str(out), lambda kind, key: None)


def test_a_dropped_file_writer_closes_both_descriptors_and_removes_its_temporary(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    writer = samples.FileBlockWriter(str(tmp_path), 5, 2, STAMP, str(out), lambda kind, key: None)
    fds, tmp = (writer._fd, writer._dir), writer.tmp
    writer.add("00000005.json", b"{}", {})
    assert os.path.exists(tmp)
    del writer
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    assert not os.path.exists(tmp)


def test_a_buffer_changed_after_add_does_not_change_the_member(tmp_path):
    writer = samples.BlockTarWriter(str(tmp_path), 5, 2, STAMP)
    buffer = bytearray(b"A" * 1000)
    writer.add("00000005.blur.png", buffer)
    buffer[:] = b"B" * 1000
    writer.add("00000006.blur.png", b"C")
    tmp, _ = writer.close()
    assert [data for _, data, _ in samples.read_block_tar(tmp, 5, 2, STAMP)] == [b"A" * 1000, b"C"]


def test_a_block_tar_of_blurgen_0_1_with_its_own_pax_keywords_is_still_read_and_checked(tmp_path):
    """Tars written before the checks moved into ``comment`` (a kept block on --resume, an old
    WebDataset output under inspect) keep their CRC-32 and dtypes under blurgen.* keywords."""
    path = str(tmp_path / "old.tar")
    stamp = {"blurgen.block": json.dumps({"start": 5, "count": 2, **STAMP}, sort_keys=True)}
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT, pax_headers=stamp) as tar:
        for name, data, dtypes in MEMBERS:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = {"blurgen.crc32": str(zlib.crc32(data))}
            if dtypes is not None:
                info.pax_headers["blurgen.dtypes"] = json.dumps(dtypes, sort_keys=True)
            tar.addfile(info, io.BytesIO(data[:-1] + b"?" if name.endswith("kernel.npy") else data))
    with pytest.raises(samples.BlockFileError, match="00000006.kernel.npy is damaged"):
        list(samples.read_block_tar(path, 5, 2, STAMP))
    assert list(samples.read_block_tar(path, 5, 2, STAMP, verify=False))[:3] == MEMBERS[:3]


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs a tar program")
def test_tar_lists_and_extracts_a_block_tar_without_a_warning(tmp_path):
    """GNU tar printed "Ignoring unknown extended header keyword 'blurgen.crc32'" for every member."""
    path = _ours(tmp_path)
    listed = subprocess.run(["tar", "-tvf", path], capture_output=True, text=True, check=True)
    assert listed.stderr == "" and len(listed.stdout.splitlines()) == len(MEMBERS), listed
    (tmp_path / "x").mkdir()
    done = subprocess.run(["tar", "-xf", path, "-C", str(tmp_path / "x")], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    assert (tmp_path / "x" / "00000005.blur.png").read_bytes() == MEMBERS[0][1]
