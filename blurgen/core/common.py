"""What every layer of blurgen shares: the error base class and its one-line message, atomic
output files, ``flock`` locks and free-space checks.

Standard library only (no numpy, h5py or torch), so the CLI, the dataset writer and the trainer
can all import it without pulling each other in.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from typing import IO, Iterator

#: errno values that mean "no room for this write": the disk is full (ENOSPC), the process's
#: file-size limit is hit (EFBIG, ``ulimit -f``) or the user's quota is used up (EDQUOT).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
#: How HDF5 reports those errnos inside its own message text (h5py wraps them in other types).
_DISK_FULL_TEXTS = ("No space left on device", "File too large", "Disk quota exceeded",
                    *(f"errno = {code}," for code in sorted(DISK_FULL_ERRNOS)))


class BlurgenError(Exception):
    """Base of every error blurgen raises on purpose: its message is one line meant for the user
    (the CLI prints ``one_line(exc)`` and exits 1, without a traceback)."""


class DatasetError(BlurgenError):
    """A run that cannot go on: existing output, different settings on resume, a worker failure.
    The message is one line for the user."""


class DiskFullError(BlurgenError):
    """No room to write ``path``; ``reason`` is "disk full", "file-size limit reached" or "disk
    quota exceeded"."""

    def __init__(self, path: str, reason: str = "disk full") -> None:
        super().__init__(f"{reason} while writing {path}")
        self.path = path
        self.reason = reason


class LockedError(BlurgenError):
    """A lock another process holds (an in-progress run)."""


def one_line(exc: BaseException) -> str:
    """An exception's message as one line, for the user.

    Whitespace runs (HDF5 texts hold newlines and indentation) become one space. A DataLoader
    worker re-raises with the worker's traceback inside the message ("Caught X in DataLoader worker
    process 0. Original Traceback ..."): only its last line, the original error, is kept, without
    the exception's module path. An empty message gives the exception's type name.
    """
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        name, sep, rest = last.partition(": ")
        text = rest if sep and " " not in name else last
    text = " ".join(text.split())
    first = min((text.find(word) for word in _UNSAFE_ADVICE if word in text), default=-1)
    if first >= 0:  # numpy's and torch's advice to unpickle: keep what comes before it (the file)
        cut = max(text.rfind(". ", 0, first), text.rfind(": ", 0, first))
        kept = text[:cut].rstrip(" .:") if cut > 0 else ""
        advice = "the file holds pickled Python objects, which blurgen never loads (they can run code)"
        return f"{kept}: {advice}" if kept else advice
    return text or type(exc).__name__


#: Words of library messages that advise loading a file unsafely: never relayed to the user.
_UNSAFE_ADVICE = ("allow_pickle", "weights_only=False", "`weights_only` set to `False`", "pickle.load", "unsafely",
                  "can still be loaded")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` means there is no room to write: ``DiskFullError``, an ``OSError`` with
    ENOSPC/EFBIG/EDQUOT, or an h5py error whose text carries one of them."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    text = str(exc)
    return any(marker in text for marker in _DISK_FULL_TEXTS)


def disk_full_reason(exc: BaseException) -> str:
    """A short name for the resource ``exc`` ran out of (for messages)."""
    if isinstance(exc, DiskFullError):
        return exc.reason
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.EFBIG or "File too large" in text or f"errno = {errno.EFBIG}," in text:
        return "file-size limit reached"
    if code == errno.EDQUOT or "Disk quota exceeded" in text or f"errno = {errno.EDQUOT}," in text:
        return "disk quota exceeded"
    return "disk full"


def free_bytes(path: str) -> int:
    """Bytes an unprivileged process may still write on the file system holding ``path``
    (a file or folder; its nearest existing ancestor is measured)."""
    path = os.path.abspath(os.fspath(path))
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


#: File (in the folder written to) whose flock serialises "check free space, then write".
SPACE_LOCK_NAME = ".space-lock"


@contextlib.contextmanager
def space_for(folder: str, nbytes: int, path: str, lock: bool = True) -> Iterator[None]:
    """Make sure ``nbytes`` fit in ``folder`` (``DiskFullError`` naming ``path`` otherwise), holding
    the folder's space lock (``lock``) for the duration of the block.

    Every writer of one run (workers writing parts, the assembler) checks only its own need; two
    checking at once could both pass and then, together, fill the disk. Holding this lock from the
    check until the write is done makes every check see the others' writes. ``flock``: released
    by the kernel even on SIGKILL. A lone writer passes ``lock=False`` (no lock file is left).
    """
    with (flocked(os.path.join(folder, SPACE_LOCK_NAME), "", blocking=True) if lock
          else contextlib.nullcontext()):
        if free_bytes(folder) < nbytes:
            raise DiskFullError(path)
        yield


def preallocate(fd: int, nbytes: int, path: str) -> None:
    """Reserve ``nbytes`` of disk for the open file ``fd`` (``posix_fallocate``), so that later
    writes inside that size cannot meet a full disk or the file-size limit; ``DiskFullError``
    naming ``path`` if it cannot be reserved. File systems without fallocate are left as they are."""
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(path, disk_full_reason(exc)) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise


def fsync_path(path: str) -> None:
    """fsync a file (its data) or a folder (making a rename inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- atomic files
TEMPORARY_SUFFIX = ".tmp"


def _current_umask() -> int:
    """The process umask, read from /proc (no set-and-restore race with other threads)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    umask = os.umask(0o022)  # no /proc: the classic read, which briefly sets it
    os.umask(umask)
    return umask


def is_temporary(name: str, target: str | None = None) -> bool:
    """Whether file name ``name`` is one of ``atomic_path``'s temporaries (of ``target``'s base
    name if given): ``.<name>.XXXXXXXX.tmp``."""
    if not (name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)):
        return False
    return target is None or name.startswith(f".{os.path.basename(target)}.")


def remove_temporaries(folder: str, target: str | None = None) -> int:
    """Delete what killed atomic writes left in ``folder`` (of ``target`` only, if given); call
    it only while no write runs there. Returns how many were removed."""
    removed = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for name in os.listdir(folder):
            if is_temporary(name, target):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", durable: bool = False) -> Iterator[str]:
    """Yield a temporary path beside ``path`` (``.NAME.XXXXXXXX<suffix>.tmp``, the usual file
    mode); when the block ends without error it is renamed onto ``path``, so no reader ever sees a
    half-written file under the final name. Any error (a full disk, Ctrl-C) removes the temporary
    and leaves a previous ``path`` intact. ``durable`` fsyncs the file and then its folder.

    For writers that take a path (``np.save``, PNG encoders, HDF5); ``atomic_file`` gives a handle.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix + TEMPORARY_SUFFIX,
                               dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp's 0600 -> what any new file would get
    finally:
        os.close(fd)
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", durable: bool = True,
                encoding: str | None = None) -> Iterator[IO]:
    """``atomic_path`` with an open handle (``mode`` "wb" or "w"); durable by default."""
    with atomic_path(path, durable=durable) as tmp:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle


def check_can_create(path: str, overwrite: bool = False, what: str = "output") -> None:
    """Refuse (``BlurgenError``) to write ``path`` when it exists and ``overwrite`` is not set,
    or when its folder is missing or read-only; a folder at ``path`` is never replaced."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise BlurgenError(f"cannot write {what} {path}: it is a folder")
    if os.path.lexists(path) and not overwrite:
        raise BlurgenError(f"{path} exists; use --overwrite to replace it")
    check_folder_of(path)


def check_folder_of(path: str) -> None:
    """Refuse (``BlurgenError``) when the folder that is to hold ``path`` (a file, or an output
    folder or prefix) is missing, also on the path as given, or read-only."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise BlurgenError(f"cannot write {path}: folder {directory} does not exist")
    given = os.path.dirname(path.rstrip(os.sep))
    if given and not os.path.isdir(given):  # 'x/../out': abspath drops x, the kernel (and makedirs) do not
        raise BlurgenError(f"cannot write {path}: folder {given} does not exist (a folder on that path is missing)")
    if not os.access(directory, os.W_OK):
        raise BlurgenError(f"cannot write {path}: folder {directory} is not writable")


# -------------------------------------------------------------------------------------- locks
@contextlib.contextmanager
def flocked(path: str, busy_message: str, blocking: bool = False,
            error: type[BlurgenError] = LockedError) -> Iterator[int]:
    """Hold an exclusive ``flock`` on the file ``path`` (created if missing) for the block; yields
    its descriptor. Raises ``error(busy_message)`` (``LockedError`` unless a caller names its own
    class) if another process holds it (unless ``blocking``, which waits). An flock dies with its process (SIGKILL included), so a stale lock
    never blocks a later run."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise error(busy_message) from None
            raise
        yield fd
    finally:
        os.close(fd)


def is_flocked(path: str) -> bool:
    """Whether some process holds an exclusive ``flock`` on the file ``path`` right now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
