"""Reports on finished folders, LMDB and WebDataset outputs (``blurgen inspect OUT``).

``find_output`` recognises an output by its description (``OUT/blurgen.json`` for folders and
LMDB, ``PREFIX.json`` or ``PREFIX.shard-i-of-N.json`` for WebDataset tars); ``describe_output``
says what it holds (format, samples written/planned, image size, the settings) and checks it: each
sample has both images, a kernel and its parameters, the names (files, LMDB keys, tar keys) are the
planned ones and agree between the blurred and sharp sides, BasicSR's ``meta_info.txt`` lines
match the keys and the image sizes, every kernel sums to 1. With ``verify`` each PNG is decoded
(its CRCs and zlib stream checked), else only its header is read. An output too damaged to read
at all is a ``PairsFileError`` (one line).
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import stat
import tarfile
import zlib
from typing import Any, Iterator

import numpy as np

from blurgen.inspect import incomplete_problem
from blurgen.inspect.side_arrays import SideArrays, kernel_problem
from blurgen.runs.outputs import META_NAME, read_meta, read_params_csv
from blurgen.runs.samples import decode_png, load_npy, member_checks, sample_name
from blurgen.store.schema import PairsFileError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: BasicSR's meta_info.txt line: ``NAME.png (H,W,C) COMPRESS_LEVEL``.
META_INFO_LINE = re.compile(r"^(\S+?)\.png \((\d+),(\d+),(\d+)\) (\d+)$")
IMAGE_KINDS = ("blur.png", "sharp.png")
#: What each layout is, for the report's first line.
LAYOUTS = {"folders": "blur/ and sharp/ PNG folders", "lmdb": "BasicSR LMDB blur.lmdb and sharp.lmdb",
           "webdataset": "WebDataset tars"}


class Checks:
    """Problems found while scanning, counted per kind (millions of bad samples stay one line each)."""

    def __init__(self) -> None:
        self.counts: dict[str, list] = {}

    def add(self, kind: str, where: str) -> None:
        entry = self.counts.setdefault(kind, [0, where])
        entry[0] += 1

    def lines(self) -> list[str]:
        return [f"{count} {kind} (first: {first})" for kind, (count, first) in self.counts.items()]


def png_problem(data: bytes | None, size: tuple[int, int], verify: bool) -> str | None:
    """What is wrong with PNG ``data`` that should hold an RGB image of ``size`` (W, H), or None."""
    if data is None:
        return "image(s) missing"
    if data[:8] != PNG_SIGNATURE or len(data) < 26:
        return "file(s) that are not PNG images"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if (width, height) != size or data[25] not in (2, 6):
        return f"image(s) not {size[0]}x{size[1]} RGB"
    if verify:
        try:
            decoded = decode_png(data)
        except ValueError:
            return "image(s) that do not decode (damaged)"
        if decoded.shape != (size[1], size[0], 3):
            return f"image(s) not {size[0]}x{size[1]} RGB"
    return None


def sample_params(data: bytes) -> dict[str, Any]:
    """A sample's JSON member: an object of its parameters; ``ValueError`` for anything else."""
    params = json.loads(data)
    if not isinstance(params, dict):
        # ValueError, as json's own: bad data, not a bad call
        raise ValueError(f"a sample's parameters are a JSON {type(params).__name__}, not an object")  # noqa: TRY004
    return params


def read_regular(path: str, size: int = -1) -> bytes:
    """The first ``size`` bytes (-1: all) of the regular file ``path``; ``OSError`` for anything
    else, at once (a FIFO named like an image would block a plain ``open`` for ever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(size)
    finally:
        os.close(fd)


class OutputView(SideArrays):
    """A finished output: its description (``meta``) and the samples it should hold."""

    fmt = ""
    #: What a sample is called in the report (clip views: ``clips``).
    unit = "samples"

    @property
    def layout(self) -> str:
        return LAYOUTS[self.fmt]

    def count_note(self) -> str:
        """Said after the count of samples written (clip views: frames per clip)."""
        return ""

    def images_line(self) -> str:
        encoder = self.meta.get("png_encoder")
        return f"images: {self.size[0]}x{self.size[1]} RGB PNG, " + (
            "fpng encoder" if encoder == "fpng" else f"compression level {self.meta['png_compression_level']}")

    def __init__(self, path: str, meta: dict[str, Any]) -> None:
        self.path, self.meta = path, meta
        config = meta["config"]
        self.size = (int(config["width"]), int(config["height"]))
        self.expected = [sample_name(i) for i in range(int(meta["sample_start"]), int(meta["sample_stop"]))]

    @property
    def planned(self) -> int:
        return int(self.meta["n"])

    def disk_bytes(self) -> int:
        return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(self.path)
                   for name in names)

    def check_names(self, checks: Checks, where: str, found: list[str]) -> set[str]:
        """Record names planned but absent, and names present but not planned; returns the present."""
        present, planned = set(found), set(self.expected)
        for name in sorted(planned - present)[:1]:
            checks.counts[f"sample(s) missing in {where}"] = [len(planned - present), name]
        for name in sorted(present - planned)[:1]:
            checks.counts[f"unexpected name(s) in {where}"] = [len(present - planned), name]
        return present & planned

    def read_params(self, checks: Checks) -> dict[str, np.ndarray]:
        path = os.path.join(self.path, "params.csv")
        try:
            params = read_params_csv(path, self.meta["param_dtypes"])
        except (OSError, ValueError, KeyError) as exc:
            checks.counts[f"params.csv unreadable ({type(exc).__name__}: {exc})"] = [1, path]
            return {}
        index = params.pop("index")
        wanted = np.arange(int(self.meta["sample_start"]), int(self.meta["sample_stop"]))
        if not np.array_equal(index, wanted):
            checks.counts["params.csv rows not the planned samples in order"] = [1, f"{len(index)} rows"]
        return params


class FoldersView(OutputView):
    fmt = "folders"

    def scan(self, checks: Checks, verify: bool) -> tuple[int, dict[str, np.ndarray]]:
        present = []
        for folder in ("blur", "sharp"):
            root = os.path.join(self.path, folder)
            names = sorted(n[:-4] for n in os.listdir(root) if n.endswith(".png")) if os.path.isdir(root) else []
            present.append(self.check_names(checks, f"{folder}/", names))
            for name in sorted(present[-1]):
                problem = self.image_problem(root, name, verify)
                if problem:
                    checks.add(problem, f"{folder}/{name}.png")
        return len(present[0] & present[1]), self.check_side_files(checks, verify)

    def image_problem(self, root: str, name: str, verify: bool) -> str | None:
        """What is wrong with image ``root/name.png`` (``png_problem``), or None."""
        try:
            return png_problem(self._image(root, name, verify), self.size, verify)
        except OSError:
            return "image(s) unreadable (not a regular file, or no permission)"

    @staticmethod
    def _image(root: str, name: str, whole: bool) -> bytes:
        return read_regular(os.path.join(root, name + ".png"), -1 if whole else 26)

    def rows(self, names: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        for name in names:
            blurred, sharp = (decode_png(self._image(os.path.join(self.path, f), name, True)) for f in ("blur", "sharp"))
            yield blurred, sharp, self.kernel(name)


class LmdbView(OutputView):
    fmt = "lmdb"

    def envs(self, checks: Checks | None = None) -> dict[str, Any]:
        """The blur and sharp envs, read-only. One that does not open is a ``PairsFileError`` (the
        output is unreadable); one whose data.mdb lacks pages its meta says are used (``short_data``)
        is left out and reported in ``checks`` (without ``checks``: a ``PairsFileError``)."""
        import lmdb

        envs = {}
        try:
            for kind in ("blur", "sharp"):
                root = os.path.join(self.path, f"{kind}.lmdb")
                try:
                    env = lmdb.open(root, readonly=True, lock=False, readahead=False, create=False)
                except lmdb.Error as exc:
                    raise PairsFileError(f"{root}: not a readable LMDB ({exc})") from None
                short = short_data(env, root)
                if short is None:
                    envs[kind] = env
                    continue
                env.close()
                if checks is None:
                    raise PairsFileError(f"{root}: {short}")
                checks.counts[f"{kind}.lmdb damaged: {short}; not read"] = [1, root]
        except PairsFileError:
            for env in envs.values():
                env.close()
            raise
        return envs

    @contextlib.contextmanager
    def reading(self) -> Iterator[dict[str, Any]]:
        """``envs()``, closed afterwards; an ``lmdb.Error`` while reading them (a damaged page:
        MDB_CORRUPTED, MDB_PAGE_NOTFOUND) is a ``PairsFileError``."""
        import lmdb

        envs = self.envs()
        try:
            yield envs
        except lmdb.Error as exc:
            raise PairsFileError(f"{self.path}: LMDB unreadable ({exc})") from None
        finally:
            for env in envs.values():
                env.close()

    def meta_info(self, checks: Checks, kind: str) -> list[str]:
        """Keys of ``KIND.lmdb/meta_info.txt``; lines that do not match BasicSR's form or the
        image size are problems."""
        path = os.path.join(self.path, f"{kind}.lmdb", "meta_info.txt")
        try:
            with open(path, encoding="ascii") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            checks.counts[f"{kind}.lmdb/meta_info.txt unreadable ({exc})"] = [1, path]
            return []
        keys = []
        for number, line in enumerate(lines, 1):
            match = META_INFO_LINE.match(line)
            if not match:
                checks.add(f"{kind}.lmdb/meta_info.txt line(s) not 'NAME.png (H,W,C) LEVEL'", f"line {number}")
                continue
            keys.append(match.group(1))
            if tuple(map(int, match.group(2, 3, 4))) != (self.size[1], self.size[0], 3):
                checks.add(f"{kind}.lmdb/meta_info.txt size(s) not ({self.size[1]},{self.size[0]},3)", line)
        return keys

    def scan(self, checks: Checks, verify: bool) -> tuple[int, dict[str, np.ndarray]]:
        import lmdb

        envs = self.envs(checks)
        present = {"blur": set(), "sharp": set()}
        try:
            for kind, env in envs.items():
                try:
                    present[kind] = self.scan_env(checks, kind, env, verify)
                except lmdb.Error as exc:  # a damaged page: one problem naming the env, the rest unread
                    checks.counts[f"{kind}.lmdb damaged: {exc}; not read further"] = [
                        1, os.path.join(self.path, f"{kind}.lmdb")]
        finally:
            for env in envs.values():
                env.close()
        self.found = present["blur"] & present["sharp"]
        return len(self.found), self.check_side_files(checks, verify)

    def scan_env(self, checks: Checks, kind: str, env, verify: bool) -> set[str]:
        """Check the keys, meta_info.txt and images of one env; returns the planned names it holds."""
        with env.begin() as txn:
            stored = [key.decode("ascii", "replace") for key in txn.cursor().iternext(values=False)]
            present = self.check_names(checks, f"{kind}.lmdb", stored)
            if self.meta_info(checks, kind) != sorted(stored):
                checks.add(f"{kind}.lmdb/meta_info.txt key(s) not the stored keys in order", kind)
            for name in sorted(present):
                data = txn.get(name.encode("ascii"))
                problem = png_problem(bytes(data) if verify else bytes(data[:26]), self.size, verify)
                if problem:
                    checks.add(problem, f"{kind}.lmdb key {name}")
        return present

    def rows(self, names: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        with self.reading() as envs, envs["blur"].begin() as blur, envs["sharp"].begin() as sharp:
            for name in names:
                key = name.encode("ascii")
                yield decode_png(blur.get(key)), decode_png(sharp.get(key)), self.kernel(name)


def short_data(env, root: str) -> str | None:
    """How ``root/data.mdb`` falls short of the pages ``env``'s meta says are used, or None.
    LMDB reads pages through a map of the file, so reading one past the end of a truncated file
    is a SIGBUS (the process dies), not an error. ``info`` and ``stat`` read the two meta pages at
    the start of the file through the map too, but ``lmdb.open`` has read both already with
    ``pread``: a file too short to hold them does not open (``envs``: a ``PairsFileError``)."""
    size = os.path.getsize(os.path.join(root, "data.mdb"))
    need = max(2, env.info()["last_pgno"] + 1) * env.stat()["psize"]
    if size < need:
        return f"data.mdb is {size} bytes, its pages need {need} (truncated)"
    return None


class WebDatasetView(OutputView):
    """The tars of one prefix, described by ``PREFIX.json`` or by the ``--shard`` runs' JSONs."""

    fmt = "webdataset"

    def __init__(self, prefix: str, metas: list[dict[str, Any]]) -> None:
        first = metas[0]
        meta = {**first, "sample_start": min(m["sample_start"] for m in metas),
                "sample_stop": max(m["sample_stop"] for m in metas), "n": sum(int(m["n"]) for m in metas)}
        super().__init__(prefix, meta)
        self.expected = [sample_name(s["start"] + i) for m in metas for s in m["shards"] for i in range(s["count"])]
        self.shards = sorted((s for m in metas for s in m["shards"]), key=lambda s: s["start"])
        self.runs = sorted(int(m["shard_index"]) for m in metas)

    @property
    def planned(self) -> int:
        return int(self.meta["n_total"]) if int(self.meta["shard_count"]) > 1 else int(self.meta["n"])

    def disk_bytes(self) -> int:
        tars = [os.path.join(os.path.dirname(self.path), s["url"]) for s in self.shards]
        return sum(os.path.getsize(t) for t in tars if os.path.isfile(t))

    def members(self, checks: Checks, verify: bool, shards: list | None = None) -> Iterator[tuple[str, str, Any]]:
        """``(key, kind, data)`` of every member of every tar (data None without ``verify``)."""
        for shard in self.shards if shards is None else shards:
            path = os.path.join(os.path.dirname(self.path), shard["url"])
            if not os.path.isfile(path):
                checks.add("tar(s) missing", shard["url"])
                continue
            try:
                with tarfile.open(path, "r") as tar:
                    for info in tar:
                        data = tar.extractfile(info).read() if verify else None
                        crc, _ = member_checks(info.pax_headers)
                        if data is not None and crc is not None and str(zlib.crc32(data)) != crc:
                            checks.add("tar member(s) damaged (CRC-32 mismatch)", f"{shard['url']}:{info.name}")
                        key, _, kind = info.name.partition(".")
                        yield key, kind, data
            except (OSError, tarfile.TarError) as exc:
                checks.add("tar(s) unreadable", f"{shard['url']} ({exc})")

    def scan(self, checks: Checks, verify: bool) -> tuple[int, dict[str, np.ndarray]]:
        kinds: dict[str, set[str]] = {}
        params: dict[str, dict] = {}
        shape = None
        for key, kind, data in self.members(checks, verify):
            kinds.setdefault(key, set()).add(kind)
            if data is None:
                continue
            problem = None
            try:
                if kind in IMAGE_KINDS:
                    problem = png_problem(data, self.size, verify)
                elif kind == "kernel.npy":
                    kernel = load_npy(data)
                    shape = shape or kernel.shape
                    problem = kernel_problem(kernel, shape)
                elif kind == "json":
                    params[key] = sample_params(data)
            except (ValueError, EOFError):  # a damaged .npy header or JSON (its CRC-32 says so too)
                problem = f"{kind} member(s) unreadable"
            if problem:
                checks.add(problem, f"{key}.{kind}")
        present = self.check_names(checks, "the tars", list(kinds))
        needed = {*IMAGE_KINDS, "kernel.npy", "json"} | ({"motion.npy"} if any("motion.npy" in k for k in kinds.values())
                                                         else set())
        for key in sorted(present):
            for kind in sorted(needed - kinds[key]):
                checks.add(f"sample(s) without {kind}", key)
        return sum(1 for key in present if set(IMAGE_KINDS) <= kinds[key]), self.params_array(params)

    def params_array(self, params: dict[str, dict]) -> dict[str, np.ndarray]:
        keys = sorted(params)
        return {name: np.array([params[k].get(name, np.nan) for k in keys], dtype=dtype)
                for name, dtype in self.meta["param_dtypes"].items()} if keys else {}

    def rows(self, names: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        wanted, found = set(names), {}
        indices = [int(name) for name in names]
        shards = [s for s in self.shards if any(s["start"] <= i < s["start"] + s["count"] for i in indices)]
        for key, kind, data in self.members(Checks(), True, shards):
            if key in wanted and kind in (*IMAGE_KINDS, "kernel.npy"):
                found.setdefault(key, {})[kind] = data
        for name in names:
            got = found[name]
            yield decode_png(got["blur.png"]), decode_png(got["sharp.png"]), np.load(io.BytesIO(got["kernel.npy"]))


def find_output(path: str, views: dict[str, type] | None = None) -> OutputView | None:
    """The finished folders, LMDB or WebDataset output ``path`` names (``OUT``, ``PREFIX``,
    ``PREFIX.tar`` or ``PREFIX.json``), or None if it names none; ``views``: the view class of
    each format (default the pairs' views; ``blurgen.inspect.clip_outputs`` picks the clips' when
    the output holds clips). ``PairsFileError`` for a description that is unreadable or of
    another format."""
    views = views or {"folders": FoldersView, "lmdb": LmdbView, "webdataset": WebDatasetView}
    path = os.fspath(path).rstrip(os.sep) or os.sep
    if os.path.isdir(path):
        meta_path = os.path.join(path, META_NAME)
        if not os.path.isfile(meta_path):
            return None
        meta = read_meta(meta_path)
        if meta["format"] not in ("folders", "lmdb"):
            raise PairsFileError(f"{meta_path}: describes a {meta['format']!r} output, not a folders or LMDB one")
        return views[meta["format"]](path, meta)
    prefix = re.sub(r"(-\d{6})?\.(tar|json)$", "", path)
    paths = ([prefix + ".json"] if os.path.isfile(prefix + ".json") else
             sorted(glob.glob(glob.escape(prefix) + ".shard-*-of-*.json")))
    if not paths:
        return None
    metas = [read_meta(p) for p in paths]
    for meta_path, meta in zip(paths, metas):
        if meta["format"] != "webdataset" or not isinstance(meta.get("shards"), list):
            raise PairsFileError(f"{meta_path}: not a blurgen WebDataset index")
    return views["webdataset"](prefix, metas)


def _param_lines(params: dict[str, np.ndarray]) -> list[str]:
    lines = [f"  {'name':<20} {'dtype':<8} {'min':>12} {'mean':>12} {'max':>12}"]
    for name, values in sorted(params.items()):
        finite = values[np.isfinite(values.astype(np.float64))].astype(np.float64)
        stats = [f"{v:12.6g}" for v in (finite.min(), finite.mean(), finite.max())] if finite.size else ["-"] * 3
        lines.append(f"  {name:<20} {str(values.dtype):<8} {stats[0]:>12} {stats[1]:>12} {stats[2]:>12}")
    return lines


def _header_lines(view: OutputView, written: int) -> list[str]:
    meta = view.meta
    complete = bool(meta.get("complete")) and written == view.planned
    lines = [f"{view.path}: blurgen {view.fmt} output ({view.layout}), blurgen {meta['blurgen_version']}, "
             f"created {meta['created']}",
             f"{view.unit}: {written}/{view.planned} written ({'complete' if complete else 'INCOMPLETE'}), "
             f"seed {meta['seed']}{view.count_note()}", view.images_line()]
    count = int(meta["shard_count"])
    if isinstance(view, WebDatasetView):
        lines.append(f"tars: {len(view.shards)} of up to {meta['samples_per_shard']} samples each")
        if count > 1:
            lines.append(f"shard runs: {len(view.runs)} of {count} finished ({', '.join(map(str, view.runs))})")
    elif count > 1:
        lines.append(f"shard: {meta['shard_index']}/{count}, samples {meta['sample_start']}..{meta['sample_stop']} "
                     f"of {meta['n_total']}")
    lines += [f"command: {meta['command']}", f"config: {json.dumps(meta['config'], sort_keys=True)}",
              f"size on disk: {view.disk_bytes() / 1e6:.1f} MB"]
    return lines


def describe_output(view: OutputView, verify: bool = True) -> tuple[list[str], list[str]]:
    """``(lines, problems)`` of a finished output (see the module docstring)."""
    checks = Checks()
    written, params = view.scan(checks, verify)
    lines = _header_lines(view, written)
    if params:
        lines += [f"params (over {len(next(iter(params.values())))} {view.unit}):", *_param_lines(params)]
    elif not verify and isinstance(view, WebDatasetView):
        lines.append("params: not read (--quick reads only the tar headers)")
    problems = checks.lines()
    if written < view.planned:
        problems.insert(0, incomplete_problem(written, view.planned, f"{view.unit} have both images"))
    return lines, problems


def sheet_from_output(view: OutputView, count: int = 8) -> np.ndarray:
    """Contact sheet (blurred | sharp | kernel rows) of samples spread over the output (a clip
    view draws its own: ``view.sheet``)."""
    from blurgen.inspect.preview import _picks, pairs_sheet

    if hasattr(view, "sheet"):
        return view.sheet(count)
    if not view.expected:
        raise ValueError(f"{view.path} has no samples to show")
    names = [view.expected[i] for i in _picks(count, len(view.expected))]
    try:
        rows = list(view.rows(names))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise PairsFileError(f"{view.path}: cannot draw its samples ({type(exc).__name__}: {exc})") from None
    title = f"{os.path.basename(view.path)} ({view.fmt}): blurred | sharp | kernel"
    return pairs_sheet(rows, captions=[f"#{int(name)}" for name in names], title=title)
