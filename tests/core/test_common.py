"""The shared helpers: one-line errors, disk-full detection, atomic files, locks."""

import errno
import os
import subprocess
import sys

import pytest

from blurgen.core.common import (
    BlurgenError,
    DiskFullError,
    LockedError,
    atomic_file,
    atomic_path,
    check_can_create,
    disk_full_reason,
    flocked,
    free_bytes,
    is_disk_full,
    is_flocked,
    is_temporary,
    one_line,
    remove_temporaries,
)


def test_one_line_collapses_whitespace_and_keeps_the_original_error_of_a_dataloader_worker():
    assert one_line(ValueError("a\n   b\tc")) == "a b c"
    assert one_line(KeyError()) == "KeyError"
    wrapped = RuntimeError("Caught OSError in DataLoader worker process 0.\nOriginal Traceback "
                           "(most recent call last):\n  File x\nOSError: disk broke\n")
    assert one_line(wrapped) == "disk broke"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_disk_full_is_recognised_for_every_resource_errno(code):
    assert is_disk_full(OSError(code, os.strerror(code)))
    assert is_disk_full(RuntimeError(f"Can't write data (file write failed: errno = {code}, "
                                     f"error message = '{os.strerror(code)}')"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert disk_full_reason(OSError(errno.EFBIG, "File too large")) == "file-size limit reached"
    assert isinstance(DiskFullError("x"), BlurgenError)


def test_atomic_path_renames_only_on_success_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            open(tmp, "wb").write(b"half")
            1 / 0
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]
    with atomic_file(target) as fh:
        fh.write(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_temporaries_of_killed_writes_are_named_and_removed(tmp_path):
    with atomic_path(tmp_path / "a.pt") as tmp:
        name = os.path.basename(tmp)
        assert is_temporary(name) and is_temporary(name, "a.pt") and not is_temporary(name, "b.pt")
        open(tmp, "w").close()
        os.link(tmp, tmp_path / name.replace(".tmp", ".x.tmp"))  # a "killed" one beside it
    assert remove_temporaries(str(tmp_path), "a.pt") == 1
    assert sorted(os.listdir(tmp_path)) == ["a.pt"]


def test_check_can_create_refuses_existing_files_unless_overwrite(tmp_path):
    existing = tmp_path / "x.h5"
    existing.write_bytes(b"")
    with pytest.raises(BlurgenError, match="exists; use --overwrite"):
        check_can_create(str(existing))
    check_can_create(str(existing), overwrite=True)
    with pytest.raises(BlurgenError, match="folder"):
        check_can_create(str(tmp_path))
    with pytest.raises(BlurgenError, match="does not exist"):
        check_can_create(str(tmp_path / "no" / "x.png"))


def test_flock_refuses_a_second_holder_and_dies_with_its_process(tmp_path):
    lock = str(tmp_path / ".lock")
    holder = subprocess.Popen([sys.executable, "-c", f"""
import fcntl, os, sys, time
fd = os.open({lock!r}, os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print('held', flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_flocked(lock)
        with pytest.raises(LockedError, match="busy"):
            with flocked(lock, "busy"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert not is_flocked(lock)
    with flocked(lock, "busy"):
        assert is_flocked(lock)


def test_free_bytes_measures_the_nearest_existing_folder(tmp_path):
    st = os.statvfs(tmp_path)
    assert abs(free_bytes(str(tmp_path / "not" / "yet")) - st.f_bavail * st.f_frsize) < 2**30
