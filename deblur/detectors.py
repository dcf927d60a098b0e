"""Object detectors for `blurgen eval --detector`: torchvision's models from local weights, or any
``module:function`` the user names.

A detector is a callable: a list of uint8 ``(H, W, 3)`` RGB NumPy images in, a list of
``blurgen.deblur.detection.Detections`` (one per image) out, with ``name`` and ``class_names``
(label -> name, possibly empty).

- **torchvision** (BSD): Faster R-CNN, RetinaNet, FCOS, SSD and SSDlite, built with
  ``weights=None, weights_backbone=None`` (nothing is ever downloaded) and loaded from a local file
  with ``torch.load(weights_only=True)``: tensors and plain containers only, so a weights file
  cannot run code. The number of classes is read from the file's classification head, so a model
  fine-tuned on your own classes loads as it is.
- **plug-in** ``module:function`` (or ``path/to/file.py:function``): trusted code the user names,
  imported and called as it is. It receives the list of images and returns, per image,
  ``(boxes, scores, labels)``: float ``(K, 4)`` xyxy pixels, float ``(K,)``, int ``(K,)`` (NumPy
  arrays, lists or CPU tensors). What it returns is checked (``DetectionError``, one line).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Callable, Optional

import numpy as np
import torch

from blurgen.core.common import one_line
from blurgen.deblur.detection import TORCHVISION_DETECTORS, DetectionError, Detections, check_detections

#: torchvision's default class count: COCO's 91 category ids (0 = background).
COCO_NUM_CLASSES = 91


class DetectorSpecError(DetectionError):
    """A ``--detector`` that names nothing usable (unknown name, module that does not import,
    missing or non-callable attribute): a command-line problem."""


def is_plugin(spec: str) -> bool:
    return ":" in spec


def _import_module(module: str):
    if module.endswith(".py"):
        if not os.path.isfile(module):
            raise DetectorSpecError(f"{module}: no such file")
        name = "blurgen_detector_" + os.path.splitext(os.path.basename(module))[0]
        spec = importlib.util.spec_from_file_location(name, module)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod
    return importlib.import_module(module)


class PluginDetector:
    """A user's ``module:function`` detector; its output is validated image by image."""

    def __init__(self, spec: str) -> None:
        module, _, attr = spec.rpartition(":")
        if not module or not attr:
            raise DetectorSpecError(f"{spec!r}: expected module:function or file.py:function")
        try:
            mod = _import_module(module)
        except DetectorSpecError:
            raise
        except BaseException as exc:  # noqa: BLE001 - user code: SyntaxError, SystemExit, ... all one line
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise DetectorSpecError(f"cannot import {module!r}: {one_line(exc)}") from None
        function = mod
        for part in attr.split("."):
            function = getattr(function, part, None)
            if function is None:
                raise DetectorSpecError(f"{module!r} has no attribute {attr!r}")
        if not callable(function):
            raise DetectorSpecError(f"{spec}: {type(function).__name__} is not callable")
        self.name, self.function, self.class_names = spec, function, {}

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        images = [np.array(image) for image in images]  # copies: a plug-in that draws on them changes no score
        try:
            results = self.function(images)
        except Exception as exc:  # noqa: BLE001 - the user's detector may raise anything
            raise DetectionError(f"detector {self.name} failed: {one_line(exc)}") from None
        if not isinstance(results, (list, tuple)) or len(results) != len(images):
            got = f"{len(results)} results" if isinstance(results, (list, tuple)) else type(results).__name__
            raise DetectionError(f"detector {self.name}: expected a list of {len(images)} (boxes, scores, labels) "
                                 f"tuples, one per image, got {got}")
        return [check_detections(r, f"detector {self.name}, result {i}", images[i].shape)
                for i, r in enumerate(results)]


def read_weights(path: str) -> dict:
    """A state dict from ``path`` via ``torch.load(weights_only=True)`` (never runs code); a dict
    holding one under ``model`` or ``state_dict`` (training scripts' habit) is accepted."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, foreign pickle, text: many types
        raise DetectionError(f"{path}: not a weights file torch.load(weights_only=True) can read "
                             f"({one_line(exc)[:200]})") from None
    for key in ("model", "state_dict"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not payload or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in payload.items()):
        raise DetectionError(f"{path}: not a state dict (a dict of tensors)")
    return payload


def _num_classes(builder: Callable, state: dict) -> int:
    """The class count the stored classification head was made for: the heads' output rows are a
    multiple of the class count, so the rows of a tensor whose shape differs from the default
    (91-class) model's give it. Built on the meta device: no memory, no time."""
    with torch.device("meta"):
        expected = builder(weights=None, weights_backbone=None).state_dict()
    found = set()
    for key, tensor in expected.items():
        stored = state.get(key)
        if stored is None or stored.shape == tensor.shape or stored.shape[1:] != tensor.shape[1:]:
            continue
        if tensor.shape[0] % COCO_NUM_CLASSES == 0:
            per_class = tensor.shape[0] // COCO_NUM_CLASSES
            if stored.shape[0] % per_class == 0:
                found.add(stored.shape[0] // per_class)
    return found.pop() if len(found) == 1 else COCO_NUM_CLASSES


def coco_names() -> dict[int, str]:
    """torchvision's COCO category names by label (shipped in its code, no download)."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    names = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    return {i: n for i, n in enumerate(names) if n not in ("__background__", "N/A")}


class TorchvisionDetector:
    """A torchvision detection model with weights from a local file, in eval mode on ``device``."""

    def __init__(self, name: str, weights: str, device: torch.device | str = "cpu") -> None:
        from torchvision.models import detection

        if name not in TORCHVISION_DETECTORS:
            raise DetectorSpecError(f"unknown detector {name!r}; choose one of {', '.join(TORCHVISION_DETECTORS)} "
                                    "or give module:function")
        builder = getattr(detection, name)
        state = read_weights(weights)
        num_classes = _num_classes(builder, state)
        model = builder(weights=None, weights_backbone=None, num_classes=num_classes)
        missing, unexpected = _compare(model.state_dict(), state)
        if missing or unexpected:
            example = (missing or unexpected)[0]
            raise DetectionError(f"{weights}: weights do not fit {name} ({len(missing)} tensors missing, "
                                 f"{len(unexpected)} unexpected or of another shape, e.g. {example}); "
                                 "weights for another architecture?")
        model.load_state_dict(state, strict=True)
        self.model = model.to(device).eval()
        self.device, self.name = torch.device(device), name
        self.class_names = coco_names() if num_classes == COCO_NUM_CLASSES else {}

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        batch = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).to(self.device).float() / 255.0
                 for im in images]
        outputs = self.model(batch)
        return [check_detections((o["boxes"], o["scores"], o["labels"]), f"{self.name}, image {i}")
                for i, o in enumerate(outputs)]


def _compare(expected: dict, state: dict) -> tuple[list[str], list[str]]:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected or state[k].shape != expected[k].shape]
    return missing, unexpected


def load_detector(spec: str, weights: Optional[str] = None, device: torch.device | str = "cpu"):
    """``--detector`` -> a detector: a torchvision name (``weights`` required) or a plug-in
    ``module:function`` (``weights`` must be None; the plug-in loads its own)."""
    if is_plugin(spec):
        if weights is not None:
            raise DetectorSpecError("--detector-weights is for torchvision detectors; "
                                    f"{spec} loads its own weights")
        return PluginDetector(spec)
    if weights is None:
        raise DetectorSpecError(f"{spec} needs --detector-weights PATH (blurgen never downloads weights)")
    return TorchvisionDetector(spec, weights, device)
