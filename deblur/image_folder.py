"""`blurgen eval --data images:DIR`: a folder of blurred images, optionally with sharp twins and
COCO-format box annotations.

Layout::

    DIR/blur/NAME.png         the blurred images (required; .png, .jpg, .jpeg, .bmp, .tif, .tiff)
    DIR/sharp/NAME.png        optional: the sharp twin of each, same name and size
    DIR/annotations.json      optional: COCO format; each ``images[].file_name`` (its base name)
                              names a file of blur/, ``annotations[].bbox`` is [x, y, w, h] pixels

Without ``sharp/`` there is nothing to score PSNR/SSIM against (real blurred photos); with a
detector, eval then reports detection counts and mean scores before and after deblurring.
Annotations marked ``iscrowd`` are left out of the references.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from blurgen.deblur.data import DataError
from blurgen.deblur.detection import Detections

PREFIX = "images:"
EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class FolderItem:
    """One image of a folder: uint8 RGB ``(H, W, 3)`` blurred, sharp (or None) and the annotated
    boxes (or None without annotations.json)."""

    name: str
    blurred: np.ndarray
    sharp: Optional[np.ndarray]
    boxes: Optional[Detections]


def split_spec(spec: str) -> Optional[str]:
    """The DIR of an ``images:DIR`` spec (``~`` expanded), None for other specs."""
    return os.path.expanduser(spec[len(PREFIX):]) if spec.startswith(PREFIX) else None


def _names(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(EXTENSIONS) and not n.startswith("."))


def _bad(path: str, what: str) -> DataError:
    return DataError(f"{path}: {what}")


def read_annotations(path: str, names: list[str]) -> tuple[dict[str, Detections], dict[int, str]]:
    """COCO boxes by blur/ file name (xyxy) and the category names by id. Every image of blur/ must
    be listed (an unlisted image would count all its detections as false positives)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        images = {int(im["id"]): os.path.basename(str(im["file_name"])) for im in data["images"]}
        categories = {int(c["id"]): str(c.get("name", c["id"])) for c in data.get("categories", [])}
        boxes: dict[str, list] = {name: [] for name in images.values()}
        for ann in data.get("annotations", []):
            if ann.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            if not all(np.isfinite([x, y, w, h])) or w < 0 or h < 0:
                raise _bad(path, f"annotation {ann.get('id')} has a bad bbox {ann['bbox']}")
            boxes[images[int(ann["image_id"])]].append((x, y, x + w, y + h, int(ann["category_id"])))
    except OSError as exc:
        raise _bad(path, f"unreadable ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise _bad(path, f"not JSON ({exc.msg}, line {exc.lineno})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(path, f"not COCO annotations ({type(exc).__name__}: {exc})") from None
    missing = [n for n in names if n not in boxes]
    if missing:
        raise _bad(path, f"no entry for {len(missing)} image(s) of blur/ (first: {missing[0]})")
    out = {}
    for name, rows in boxes.items():
        arr = np.asarray(rows, np.float64).reshape(-1, 5)
        out[name] = Detections(arr[:, :4], np.ones(len(arr)), arr[:, 4].astype(np.int64))
    return out, categories


@dataclass(frozen=True)
class ImageFolder:
    """A checked ``images:DIR`` folder (``scan``); iterate it with ``items``."""

    root: str
    names: list[str]
    has_sharp: bool
    boxes: Optional[dict[str, Detections]]
    categories: dict[int, str]

    @staticmethod
    def scan(root: str) -> "ImageFolder":
        """Check the layout; ``DataError`` (one line) when blur/ is missing or empty, a sharp twin
        is missing, or annotations.json is unreadable or incomplete."""
        blur = os.path.join(root, "blur")
        if not os.path.isdir(blur):
            raise _bad(root, "no blur/ folder (images:DIR wants DIR/blur/*.png, optional DIR/sharp/, "
                             "DIR/annotations.json)")
        names = _names(blur)
        if not names:
            raise _bad(blur, f"no images ({', '.join(EXTENSIONS)})")
        sharp = os.path.join(root, "sharp")
        has_sharp = os.path.isdir(sharp)
        if has_sharp:
            missing = sorted(set(names) - set(_names(sharp)))
            if missing:
                raise _bad(sharp, f"no sharp twin for {len(missing)} image(s) of blur/ (first: {missing[0]})")
        annotations = os.path.join(root, "annotations.json")
        boxes, categories = (read_annotations(annotations, names) if os.path.exists(annotations) else (None, {}))
        return ImageFolder(root, names, has_sharp, boxes, categories)

    def items(self, limit: Optional[int] = None) -> Iterator[FolderItem]:
        from blurgen.deblur.data import read_rgb

        for name in self.names[:limit]:
            blurred = read_rgb(os.path.join(self.root, "blur", name))
            sharp = read_rgb(os.path.join(self.root, "sharp", name)) if self.has_sharp else None
            if sharp is not None and sharp.shape != blurred.shape:
                raise _bad(os.path.join(self.root, "blur", name),
                           f"{blurred.shape[1]}x{blurred.shape[0]} does not match its sharp twin "
                           f"{sharp.shape[1]}x{sharp.shape[0]}")
            yield FolderItem(name, blurred, sharp, None if self.boxes is None else self.boxes[name])
