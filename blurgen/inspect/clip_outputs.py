"""Reports on finished clip outputs (``make --clips`` with ``--format folders|lmdb|webdataset``,
``blurgen.runs.clip_sinks``): the pair views of ``blurgen.inspect.outputs_report`` counting whole
clips. A clip is written when every frame has both images; each frame's kernel, the per-frame
values (``frames.npz``) and the clip's parameters are checked as a pair's are, and ``--png``
draws the frame strip of the clips file (blurred frames over sharp ones).
"""

from __future__ import annotations

import io
import os
from typing import Any, Iterator

import numpy as np

from blurgen.inspect import outputs_report as report
from blurgen.inspect.outputs_report import Checks, sample_params
from blurgen.inspect.side_arrays import check_kernel_file, kernel_problem
from blurgen.runs.samples import decode_png, sample_name

FRAMES_NAME = "frames.npz"


class ClipView:
    """What the clip views share: frames per clip, the report's words, the frame strip."""

    unit = "clips"

    def setup_clips(self) -> None:
        clips = self.meta["config"]["clips"]
        self.frames = int(clips["frames"])
        self.frame_names = [sample_name(j) for j in range(self.frames)]
        self.clip_names = list(self.expected)

    @property
    def layout(self) -> str:
        return {"folders": "GoPro-layout clip folders CLIP/blur/, CLIP/sharp/ of PNG frames",
                "lmdb": "BasicSR LMDB blur.lmdb and sharp.lmdb, keys CLIP/FRAME",
                "webdataset": "WebDataset tars, one sample of frame stacks per clip"}[self.fmt]

    def count_note(self) -> str:
        clips = self.meta["config"]["clips"]
        return f", {self.frames} frames each at {clips['fps']:g} fps, shutter {clips['shutter_angle']:g} deg"

    def check_clip_side_files(self, checks: Checks, verify: bool) -> dict[str, np.ndarray]:
        """``CLIP/kernel/F.npy`` (every kernel with ``verify``) and ``CLIP/frames.npz`` of each
        clip, and ``params.csv``."""
        shape = None
        for clip in self.clip_names:
            root = os.path.join(self.path, clip)
            if not os.path.isfile(os.path.join(root, FRAMES_NAME)):
                checks.add(f"clip(s) without {FRAMES_NAME}", clip)
            for frame in self.frame_names:
                path = os.path.join(root, "kernel", frame + ".npy")
                if not os.path.isfile(path):
                    checks.add("frame kernel(s) missing", f"{clip}/kernel/{frame}.npy")
                    continue
                if verify:
                    shape = check_kernel_file(checks, path, f"{clip}/kernel/{frame}.npy", shape)
        return self.read_params(checks)

    def sheet(self, count: int = 3) -> np.ndarray:
        """The frame strip of the first ``count`` clips (up to 8 frames each)."""
        from blurgen.inspect.clip_strip import clip_strip
        from blurgen.inspect.preview import caption

        names = self.clip_names[:count]
        if not names:
            raise ValueError(f"{self.path} has no clips to show")
        try:
            blurred, sharp = (np.stack(side) for side in zip(*self.clip_rows(names)))
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise report.PairsFileError(f"{self.path}: cannot draw its clips ({type(exc).__name__}: {exc})") from None
        shown = min(8, self.frames)
        title = (f"clips {int(names[0])}-{int(names[-1])}, frames 0-{shown - 1}: blurred over sharp "
                 f"({os.path.basename(self.path)}, {self.fmt})")
        return caption(clip_strip(blurred[:, :shown], sharp[:, :shown]), title)


class ClipFoldersView(ClipView, report.FoldersView):
    def __init__(self, path: str, meta: dict[str, Any]) -> None:
        super().__init__(path, meta)
        self.setup_clips()

    def scan(self, checks: Checks, verify: bool) -> tuple[int, dict[str, np.ndarray]]:
        clips = sorted(n for n in os.listdir(self.path) if os.path.isdir(os.path.join(self.path, n)))
        present, written = self.check_names(checks, "the clip folders", clips), 0
        for clip in sorted(present):
            whole = True
            for folder in ("blur", "sharp"):
                root = os.path.join(self.path, clip, folder)
                names = {n[:-4] for n in os.listdir(root) if n.endswith(".png")} if os.path.isdir(root) else set()
                if names != set(self.frame_names):
                    checks.add(f"clip(s) whose {folder}/ frames are not 0..{self.frames - 1}", f"{clip}/{folder}")
                for name in sorted(names & set(self.frame_names)):
                    problem = self.image_problem(root, name, verify)
                    if problem:
                        checks.add(problem, f"{clip}/{folder}/{name}.png")
                whole = whole and set(self.frame_names) <= names
            written += whole
        return written, self.check_clip_side_files(checks, verify)

    def clip_rows(self, names: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for clip in names:
            yield tuple(np.stack([decode_png(self._image(os.path.join(self.path, clip, side), frame, True))
                                  for frame in self.frame_names]) for side in ("blur", "sharp"))


class ClipLmdbView(ClipView, report.LmdbView):
    def __init__(self, path: str, meta: dict[str, Any]) -> None:
        super().__init__(path, meta)
        self.setup_clips()
        self.expected = [f"{clip}/{frame}" for clip in self.clip_names for frame in self.frame_names]

    def check_side_files(self, checks: Checks, verify: bool) -> dict[str, np.ndarray]:
        return self.check_clip_side_files(checks, verify)

    def scan(self, checks: Checks, verify: bool) -> tuple[int, dict[str, np.ndarray]]:
        _, params = super().scan(checks, verify)
        return sum(all(f"{c}/{f}" in self.found for f in self.frame_names) for c in self.clip_names), params

    def clip_rows(self, names: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        with self.reading() as envs, envs["blur"].begin() as blur, envs["sharp"].begin() as sharp:
            for clip in names:
                yield tuple(np.stack([decode_png(txn.get(f"{clip}/{frame}".encode("ascii")))
                                      for frame in self.frame_names]) for txn in (blur, sharp))


class ClipWebDatasetView(ClipView, report.WebDatasetView):
    #: The members of each clip sample (``motion.npy`` too when any sample has it).
    NEEDED = ("blur.npy", "sharp.npy", "kernel.npy", FRAMES_NAME, "json")

    def __init__(self, prefix: str, metas: list[dict[str, Any]]) -> None:
        super().__init__(prefix, metas)
        self.setup_clips()

    def images_line(self) -> str:
        return f"images: {self.size[0]}x{self.size[1]} RGB, uint8 frame stacks (T, H, W, 3) in .npy"

    def _member_problem(self, kind: str, data: bytes, shapes: dict) -> str | None:
        array = np.load(io.BytesIO(data), allow_pickle=False) if kind.endswith(".npy") else None
        if kind in ("blur.npy", "sharp.npy"):
            want = (self.frames, self.size[1], self.size[0], 3)
            return None if array.dtype == np.uint8 and array.shape == want else f"frame stack(s) not uint8 {want}"
        if kind == "kernel.npy":
            shapes.setdefault("kernel", array.shape)
            if array.shape != shapes["kernel"] or array.ndim != 3 or len(array) != self.frames:
                return f"kernel stack(s) not of shape {shapes['kernel']}"
            return next((p for p in (kernel_problem(k, None) for k in array) if p), None)
        return None

    def scan(self, checks: Checks, verify: bool) -> tuple[int, dict[str, np.ndarray]]:
        kinds: dict[str, set[str]] = {}
        params: dict[str, dict] = {}
        shapes: dict = {}
        for key, kind, data in self.members(checks, verify):
            kinds.setdefault(key, set()).add(kind)
            if data is None:
                continue
            try:
                problem = self._member_problem(kind, data, shapes)
                if kind == "json":
                    params[key] = sample_params(data)
            except (ValueError, EOFError):
                problem = f"{kind} member(s) unreadable"
            if problem:
                checks.add(problem, f"{key}.{kind}")
        present = self.check_names(checks, "the tars", list(kinds))
        needed = set(self.NEEDED) | ({"motion.npy"} if any("motion.npy" in k for k in kinds.values()) else set())
        for key in sorted(present):
            for kind in sorted(needed - kinds[key]):
                checks.add(f"clip(s) without {kind}", key)
        return sum(1 for key in present if {"blur.npy", "sharp.npy"} <= kinds[key]), self.params_array(params)

    def clip_rows(self, names: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        wanted, found = set(names), {}
        for key, kind, data in self.members(Checks(), True):
            if key in wanted and kind in ("blur.npy", "sharp.npy"):
                found.setdefault(key, {})[kind] = np.load(io.BytesIO(data), allow_pickle=False)
        for name in names:
            yield found[name]["blur.npy"], found[name]["sharp.npy"]


CLIP_VIEWS = {"folders": ClipFoldersView, "lmdb": ClipLmdbView, "webdataset": ClipWebDatasetView}


def find_output(path: str) -> report.OutputView | None:
    """``outputs_report.find_output``, with the clip views for an output that holds clips."""
    view = report.find_output(path)
    if view is not None and "clips" in view.meta["config"]:
        view = report.find_output(path, CLIP_VIEWS)
    return view
