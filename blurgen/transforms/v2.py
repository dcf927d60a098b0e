"""``RandomCameraShake`` as a torchvision v2 transform: in a ``v2.Compose`` it blurs the images of a
sample and passes everything else through unchanged (bounding boxes, masks, labels, dicts).

The blur does not move anything (each kernel is centred on its centroid), so boxes and masks stay
valid as they are. Images may be ``tv_tensors.Image``, plain tensors (the first one of a sample,
torchvision's rule), PIL images or uint8 tensors; each keeps its type, dtype and device.
A ``tv_tensors.Video`` ``(T, C, H, W)`` or ``(B, T, C, H, W)`` is a clip (a batch of clips) and gets
one coherent hand-held trajectory per clip (``blurgen.transforms.clips``; needs a
``CameraConfig``). With ``clip_mode="move"`` the content moves, so a sample that also holds
bounding boxes, masks or keypoints is refused (they would no longer match the frames).

Example:
    >>> import torch
    >>> from torchvision import tv_tensors
    >>> from torchvision.transforms import v2
    >>> pipe = v2.Compose([v2.ToDtype(torch.float32, scale=True), RandomCameraShake(p=1.0, seed=0)])
    >>> image = tv_tensors.Image(torch.randint(0, 256, (3, 32, 40), dtype=torch.uint8))
    >>> boxes = tv_tensors.BoundingBoxes([[2, 3, 20, 30]], format="XYXY", canvas_size=(32, 40))
    >>> out = pipe({"image": image, "boxes": boxes, "label": 3})
    >>> type(out["image"]).__name__, out["label"], bool(torch.equal(out["boxes"], boxes))
    ('Image', 3, True)
"""

from __future__ import annotations

from typing import Any

import PIL.Image
import torch
from torch.utils._pytree import tree_flatten
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._utils import is_pure_tensor

from blurgen import transforms as base

#: What ``clip_mode="move"`` would leave behind the moving content.
_SPATIAL = tuple(getattr(tv_tensors, name) for name in ("BoundingBoxes", "Mask", "KeyPoints") if hasattr(tv_tensors, name))


class RandomCameraShake(v2.Transform):
    """``blurgen.transforms.RandomCameraShake(config, **options)`` for torchvision v2 pipelines:
    the same arguments, draws and results; ``set_epoch``, ``seed``, ``counter`` and ``state_dict``
    act on the wrapped transform (``.shake``)."""

    _transformed_types = (tv_tensors.Image, tv_tensors.Video, PIL.Image.Image, is_pure_tensor)

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__()
        self.shake = base.RandomCameraShake(config, **options)

    def set_epoch(self, epoch: int) -> None:
        """See ``blurgen.transforms.RandomCameraShake.set_epoch``."""
        self.shake.set_epoch(epoch)

    def forward(self, *inputs: Any) -> Any:
        # Checked on the whole sample (``make_params`` sees only what this transform changes).
        if self.shake.clip.mode == "move":
            flat, _ = tree_flatten(inputs)
            spatial = [type(i).__name__ for i in flat if isinstance(i, _SPATIAL)]
            if spatial:
                raise ValueError(f"clip_mode='move' moves the frames' content; the sample's {spatial[0]} would no "
                                 "longer match (use clip_mode='blur')")
        return super().forward(*inputs)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Video):
            clips = inpt.as_subclass(torch.Tensor)
            if clips.ndim not in (4, 5):
                raise ValueError(f"a tv_tensors.Video must be (T, C, H, W) or (B, T, C, H, W), got {tuple(clips.shape)}")
            out = self.shake(clips[None])[0] if clips.ndim == 4 else self.shake(clips)
            return tv_tensors.wrap(out, like=inpt)
        if isinstance(inpt, PIL.Image.Image):
            return F.to_pil_image(self.shake(F.pil_to_tensor(inpt)), mode=inpt.mode)
        out = self.shake(inpt.as_subclass(torch.Tensor))
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out
