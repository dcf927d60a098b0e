"""Issue 23, F6/F7/F8 for checkpoints: a NaN-weight checkpoint, an edited generator config and a
file that is no checkpoint are refused in one line that never advises unsafe loading."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from blurgen.cli import main  # noqa: E402
from blurgen.deblur.checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from blurgen.deblur.models import build_generator, generator_config  # noqa: E402


def _checkpoint(path, poison=False, **config_change):
    generator = build_generator("resnet", width=4, n_blocks=1)
    state = generator.state_dict()
    if poison:
        first = next(name for name, t in state.items() if t.is_floating_point())
        state[first] = torch.full_like(state[first], float("nan"))
    save_checkpoint(path, {"generator": state, "generator_config": {**generator_config(generator), **config_change}})
    return path


def _one_line(result, *fragments):
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_f7_a_nan_weight_checkpoint_is_refused_by_deblur(tmp_path):
    ckpt = _checkpoint(tmp_path / "nan.pt", poison=True)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_checkpoint(ckpt)
    from blurgen.core.imageio import write_png

    write_png(str(tmp_path / "in.png"), np.full((40, 40, 3), 128, np.uint8))
    result = CliRunner().invoke(main, ["deblur", "--checkpoint", str(ckpt), str(tmp_path / "in.png"), "--out",
                                       str(tmp_path / "out")])
    _one_line(result, "nan.pt", "NaN")
    assert not list((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True


def test_f6_f8_edited_configs_and_foreign_files_give_plain_messages(tmp_path):
    with pytest.raises(ValueError, match="do not build"):
        build_generator("resnet", width=4, n_blocks=2.5)
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    torch.save({"x": np.float64(1.0)}, tmp_path / "scalar.pt")  # numpy scalars: refused by weights_only
    for name in ("text.pt", "scalar.pt"):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        message = str(info.value)
        assert "(101)" not in message and "weights_only" not in message and "pickle" not in message.lower()
        assert "not a readable PyTorch checkpoint" in message
