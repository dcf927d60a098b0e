"""Training settings of the DeblurGAN: one frozen dataclass, validated, whose defaults are the
paper's (and the CLI's: ``blurgen train`` reads its defaults from here)."""

from __future__ import annotations

import dataclasses
import math

SOURCE_NAMES = ("synthetic", "gopro")
#: Settings that change the arithmetic of training: a resume must use the same ones, or it
#: would not continue the same run. Logging, validation, checkpoint cadence, workers and the
#: device may change freely; ``EXTENDABLE_KEYS`` may grow (a longer run).
RESUME_KEYS = ("data", "gopro", "ratio", "gopro_blur", "epochs", "max_steps", "crop", "batch_size",
               "width", "blocks", "dropout", "critic_width", "critic_layers", "lr", "beta1", "beta2",
               "critic_steps", "gp_weight", "content_weight", "seed", "val_count", "world_size",
               "content_mode", "train_sizes")
EXTENDABLE_KEYS = ("epochs", "max_steps")
#: Largest share of ``ratio`` (a cycle of the mixing sampler holds sum(ratio) slots).
MAX_RATIO_SHARE = 1000


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the paper's. ``ValueError`` names a bad field.

    ``ratio`` = shares of (synthetic HDF5, GoPro). ``val_count`` samples at the end of each
    source are held out for validation (centre crops of ``val_crop``, default ``crop``).
    ``init_from`` starts from another run's weights (fine-tuning); ``tensorboard`` also writes
    TensorBoard event files; ``val_images`` writes a blurred | output | sharp PNG per source at
    each validation. ``random_vgg`` (tests) allows a randomly initialised VGG19;
    ``threads`` sets torch's intra-op threads of the training process (``None``: torch's
    default; DataLoader workers use one each); ``inject_nan_step`` (tests) poisons the critic loss at that 1-based step.
    """

    out: str
    data: str | None = None
    gopro: str | None = None
    ratio: tuple[int, int] = (2, 1)
    gopro_blur: str = "blur"
    epochs: int = 300
    max_steps: int | None = None
    crop: int = 256
    batch_size: int = 1
    width: int = 64
    blocks: int = 9
    dropout: float = 0.5
    critic_width: int = 64
    critic_layers: int = 3
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    critic_steps: int = 5
    gp_weight: float = 10.0
    content_weight: float = 100.0
    vgg_weights: str | None = None
    random_vgg: bool = False
    init_from: str | None = None
    tensorboard: bool = False
    val_images: bool = True
    seed: int = 0
    workers: int = 2
    val_every: int = 1000
    val_count: int = 16
    val_crop: int | None = None
    ckpt_every: int = 1000
    keep_every: int = 10000
    log_every: int = 50
    device: str = "auto"
    threads: int | None = None
    inject_nan_step: int | None = None

    @classmethod
    def default(cls, name: str):
        """The default of field ``name`` (the CLI shows and uses these)."""
        return next(f.default for f in dataclasses.fields(cls) if f.name == name)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", tuple(int(r) for r in self.ratio))
        if self.data is None and self.gopro is None:
            raise ValueError("data/gopro: at least one training source is needed")
        if len(self.ratio) != 2 or min(self.ratio) < 0 or sum(self.ratio) == 0:
            raise ValueError(f"ratio={self.ratio} must be two non-negative shares, not both 0")
        for name, given in (("data", self.data), ("gopro", self.gopro)):
            if given is None and self.ratio[0 if name == "data" else 1] > 0:
                raise ValueError(f"ratio={self.ratio} gives a share to {name}, which was not given")
        if self.gopro_blur not in ("blur", "blur_gamma"):
            raise ValueError(f"gopro_blur={self.gopro_blur!r} must be 'blur' or 'blur_gamma'")
        positive = ("epochs", "crop", "batch_size", "width", "critic_width", "critic_layers",
                    "critic_steps", "val_every", "ckpt_every", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("blocks", "workers", "val_count", "keep_every", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        for name in ("max_steps", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.crop < 16:
            raise ValueError(f"crop={self.crop} must be >= 16 (the critic's InstanceNorm needs it)")
        if not (math.isfinite(self.lr) and self.lr > 0) or not 0 <= self.dropout < 1:
            raise ValueError(f"lr={self.lr} must be a finite number > 0 and dropout={self.dropout} in [0, 1)")
        for name in ("gp_weight", "content_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name}={getattr(self, name)} must be a finite number >= 0")
        if max(self.ratio) > MAX_RATIO_SHARE:
            raise ValueError(f"ratio={self.ratio}: each share must be at most {MAX_RATIO_SHARE}")
