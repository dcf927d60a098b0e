"""``RandomCameraShake`` as a torchvision v2 transform: in a ``v2.Compose`` it blurs the images of a
sample and passes everything else through unchanged (bounding boxes, masks, labels, dicts).

The blur does not move anything (each kernel is centred on its centroid), so boxes and masks stay
valid as they are. Images may be ``tv_tensors.Image``, plain tensors (the first one of a sample,
torchvision's rule), PIL images or uint8 tensors; each keeps its type, dtype and device.
``tv_tensors.Video`` is refused until clips get one coherent trajectory.

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
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._utils import is_pure_tensor

from blurgen import transforms as base


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

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Video):
            raise ValueError("RandomCameraShake does not blur tv_tensors.Video yet (a clip needs one coherent "
                             "trajectory, not a kernel per frame); pass the frames as images")
        if isinstance(inpt, PIL.Image.Image):
            return F.to_pil_image(self.shake(F.pil_to_tensor(inpt)), mode=inpt.mode)
        out = self.shake(inpt.as_subclass(torch.Tensor))
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out
