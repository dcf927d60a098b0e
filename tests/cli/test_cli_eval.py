"""`blurgen eval` and `blurgen deblur` end to end with tiny models and data made here."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from deblur_fixtures import make_gopro_tree, make_pairs_file  # noqa: E402

from blurgen.cli import main  # noqa: E402
from blurgen.deblur.metrics import psnr, ssim  # noqa: E402
from blurgen.deblur.models import build_generator, generator_config  # noqa: E402
from blurgen.store.reader import PairsFile  # noqa: E402

torch.set_num_threads(1)


def save_checkpoint(path, identity=False, width=4, n_blocks=1):
    torch.manual_seed(0)
    g = build_generator("resnet", width=width, n_blocks=n_blocks)
    if identity:  # zero residual: output == input exactly
        with torch.no_grad():
            g.tail[1].weight.zero_()
            g.tail[1].bias.zero_()
    torch.save({"format": "blurgen-deblurgan", "version": 1, "generator": g.state_dict(),
                "generator_config": generator_config(g), "step": 7}, path)
    return str(path)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pairs_h5(tmp_path_factory):
    return str(make_pairs_file(tmp_path_factory.mktemp("h5") / "pairs.h5", n=4, size=40))


@pytest.fixture(scope="module")
def gopro_root(tmp_path_factory):
    return str(make_gopro_tree(tmp_path_factory.mktemp("gopro") / "GOPRO_Large", sequences=2, frames=2,
                               size=(48, 36)))


def test_eval_reports_model_and_blurred_scores_as_json(tmp_path, pairs_h5):
    ckpt = save_checkpoint(tmp_path / "g.pt")
    result = run("eval", "--checkpoint", ckpt, "--data", pairs_h5, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # progress lines go to stderr
    (row,) = report["sources"]
    assert row["source"] == pairs_h5 and row["n"] == 4
    with PairsFile(pairs_h5) as f:
        expected_psnr = np.mean([psnr(f[i][0], f[i][1]) for i in range(4)])
        expected_ssim = np.mean([ssim(f[i][0], f[i][1]) for i in range(4)])
    assert row["blurred"]["psnr"] == pytest.approx(expected_psnr)
    assert row["blurred"]["ssim"] == pytest.approx(expected_ssim)
    assert 0 < row["model"]["psnr"] < 100 and -1 <= row["model"]["ssim"] <= 1


def test_eval_of_an_identity_model_scores_exactly_the_blurred_inputs(tmp_path, pairs_h5):
    ckpt = save_checkpoint(tmp_path / "id.pt", identity=True)
    report = json.loads(run("eval", "--checkpoint", ckpt, "--data", pairs_h5, "--json").stdout)
    row = report["sources"][0]
    assert row["model"] == row["blurred"]


def test_eval_table_lists_each_source_with_gopro_test_split_by_default(tmp_path, pairs_h5, gopro_root):
    ckpt = save_checkpoint(tmp_path / "g.pt")
    result = run("eval", "--checkpoint", ckpt, "--data", pairs_h5, "--data", f"gopro:{gopro_root}", "--limit", 3)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert "PSNR model" in lines[1] and "SSIM blur" in lines[1]
    assert lines[2].startswith(pairs_h5) and lines[2].split()[1] == "3"
    assert "gopro:" in lines[3] and "(test, blur)" in lines[3] and lines[3].split()[-5] == "3"


def test_eval_gopro_split_and_blur_folder_options(tmp_path, gopro_root):
    ckpt = save_checkpoint(tmp_path / "g.pt", identity=True)
    result = run("eval", "--checkpoint", ckpt, "--data", f"gopro:{gopro_root}", "--split", "train",
                 "--gopro-blur", "blur_gamma", "--json")
    row = json.loads(result.stdout)["sources"][0]
    assert row["n"] == 4 and "(train, blur_gamma)" in row["source"]
    assert row["model"] == row["blurred"]


def test_eval_tiled_matches_whole_for_small_images(tmp_path, pairs_h5):
    ckpt = save_checkpoint(tmp_path / "g.pt")
    whole = json.loads(run("eval", "--checkpoint", ckpt, "--data", pairs_h5, "--json").stdout)
    tiled = json.loads(run("eval", "--checkpoint", ckpt, "--data", pairs_h5, "--json", "--tile", 32).stdout)
    # 40x40 images in 32-pixel tiles with whole-image norm statistics: nearly identical scores.
    assert tiled["sources"][0]["model"]["psnr"] == pytest.approx(whole["sources"][0]["model"]["psnr"], abs=0.5)


PROGRESS_LINE = re.compile(r"^eval .*: \d+/\d+ img ")


def _assert_one_line_failure(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if not PROGRESS_LINE.match(line)]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_eval_rejects_bad_inputs_with_the_documented_exit_codes(tmp_path, pairs_h5):
    import h5py

    ckpt = save_checkpoint(tmp_path / "g.pt")
    assert run("eval", "--checkpoint", tmp_path / "missing.pt", "--data", pairs_h5).exit_code == 2
    assert run("eval", "--checkpoint", ckpt, "--data", tmp_path / "missing.h5").exit_code == 2
    assert run("eval", "--checkpoint", ckpt, "--data", f"gopro:{tmp_path / 'nope'}").exit_code == 2
    assert run("eval", "--checkpoint", ckpt, "--data", pairs_h5, "--limit", 0).exit_code == 2

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5["x"] = np.zeros(3)
    _assert_one_line_failure(run("eval", "--checkpoint", ckpt, "--data", foreign), "foreign.h5",
                             "not a blurgen pairs file")

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    _assert_one_line_failure(run("eval", "--checkpoint", corrupt, "--data", pairs_h5), "corrupt.pt")

    wrong = tmp_path / "wrong.pt"
    torch.save({"format": "blurgen-deblurgan", "version": 1, "generator": {},
                "generator_config": {"name": "resnet", "width": 4, "n_blocks": 1}}, wrong)
    _assert_one_line_failure(run("eval", "--checkpoint", wrong, "--data", pairs_h5), "wrong.pt", "do not match")

    no_sharp = tmp_path / "gopro_bad" / "test" / "GOPR0001_11_00" / "blur"
    no_sharp.mkdir(parents=True)
    _assert_one_line_failure(run("eval", "--checkpoint", ckpt, "--data", f"gopro:{tmp_path / 'gopro_bad'}"),
                             "sharp")


def test_eval_gopro_with_mismatched_frame_counts_fails_in_one_line(tmp_path):
    root = make_gopro_tree(tmp_path / "g", sequences=1, frames=2, size=(32, 32), splits=("test",))
    next((root / "test").glob("*/blur/*.png")).unlink()
    ckpt = save_checkpoint(tmp_path / "g.pt")
    _assert_one_line_failure(run("eval", "--checkpoint", ckpt, "--data", f"gopro:{root}"), "frames")


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _read(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_deblur_writes_pngs_of_the_input_sizes_for_files_and_folders(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    _write(tmp_path / "in" / "a.png", a)
    _write(tmp_path / "in" / "sub" / "b.jpg", b)
    _write(tmp_path / "c.png", a[:20, :30])
    ckpt = save_checkpoint(tmp_path / "id.pt", identity=True)
    out = tmp_path / "out"
    result = run("deblur", "--checkpoint", ckpt, tmp_path / "in", tmp_path / "c.png", "--out", out,
                 "--tile", 32, "--overlap", 8)
    assert result.exit_code == 0, result.output
    assert "deblurred 3 images" in result.output
    assert np.array_equal(_read(out / "a.png"), a)  # identity model, tiled: exact round trip
    assert _read(out / "sub" / "b.png").shape == b.shape
    assert np.array_equal(_read(out / "c.png"), a[:20, :30])


def test_deblur_tiled_and_whole_agree_closely_with_image_norm_statistics(tmp_path):
    img = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (96, 130, 3), dtype=np.uint8), (5, 5), 2)
    _write(tmp_path / "x.png", img)
    ckpt = save_checkpoint(tmp_path / "g.pt")
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "x.png", "--out", tmp_path / "w", "--tile", 0).exit_code == 0
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "x.png", "--out", tmp_path / "t", "--tile", 64).exit_code == 0
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "x.png", "--out", tmp_path / "p", "--tile", 64,
               "--tile-norm", "tile").exit_code == 0
    whole = _read(tmp_path / "w" / "x.png")
    shared, per_tile = psnr(_read(tmp_path / "t" / "x.png"), whole), psnr(_read(tmp_path / "p" / "x.png"), whole)
    # 64-pixel tiles are small for the network's receptive field, so borders still differ a bit.
    assert shared > 30 and shared > per_tile + 5


def test_deblur_skips_unreadable_files_and_exits_1(tmp_path):
    _write(tmp_path / "in" / "good.png", np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    ckpt = save_checkpoint(tmp_path / "g.pt")
    result = run("deblur", "--checkpoint", ckpt, tmp_path / "in", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "bad.png: not a readable image" in result.output
    assert (tmp_path / "out" / "good.png").exists()
    assert "Traceback" not in result.output


def test_deblur_usage_errors_exit_2(tmp_path):
    ckpt = save_checkpoint(tmp_path / "g.pt")
    _write(tmp_path / "a" / "x.png", np.zeros((16, 16, 3), np.uint8))
    _write(tmp_path / "b" / "x.png", np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "nope.png", "--out", out).exit_code == 2
    assert run("deblur", "--checkpoint", ckpt, "--out", out).exit_code == 2
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "a", tmp_path / "b", "--out", out).exit_code == 2
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "empty", "--out", out).exit_code == 1  # documented: exit 1
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "a", "--out", out, "--tile", 8).exit_code == 2
    # tile 34 is used as 32 (multiples of 4): overlap 17 is over half of it, a usage error, not a traceback
    result = run("deblur", "--checkpoint", ckpt, tmp_path / "a", "--out", out, "--tile", 34, "--overlap", 17)
    assert result.exit_code == 2 and "= 16" in result.output
    assert not out.exists()


def test_deblur_does_not_replace_existing_outputs_without_overwrite(tmp_path):
    ckpt = save_checkpoint(tmp_path / "g.pt")
    _write(tmp_path / "x.png", np.full((16, 16, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "x.png", "--out", out).exit_code == 0
    (out / "x.png").write_bytes(b"mine")
    result = run("deblur", "--checkpoint", ckpt, tmp_path / "x.png", "--out", out)
    _assert_one_line_failure(result, "already exist; pass --overwrite")
    assert (out / "x.png").read_bytes() == b"mine"
    assert run("deblur", "--checkpoint", ckpt, tmp_path / "x.png", "--out", out, "--overwrite").exit_code == 0
    assert (out / "x.png").read_bytes() != b"mine"


def test_deblur_corrupt_checkpoint_is_a_one_line_failure(tmp_path):
    _write(tmp_path / "x.png", np.zeros((16, 16, 3), np.uint8))
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, bad)
    _assert_one_line_failure(run("deblur", "--checkpoint", bad, tmp_path / "x.png", "--out", tmp_path / "o"),
                             "bad.pt", "not a blurgen DeblurGAN checkpoint")


@pytest.mark.parametrize("command", ["eval", "deblur"])
def test_help_has_examples(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Examples:" in result.output and f"blurgen {command} --checkpoint" in result.output


@pytest.mark.parametrize("command", ["eval", "deblur"])
def test_without_torch_the_commands_say_install_blurgen_train(tmp_path, monkeypatch, pairs_h5, command):
    ckpt = save_checkpoint(tmp_path / "g.pt")
    _write(tmp_path / "x.png", np.zeros((16, 16, 3), np.uint8))
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    args = (["--data", pairs_h5] if command == "eval" else [tmp_path / "x.png", "--out", tmp_path / "o"])
    result = run(command, "--checkpoint", ckpt, *args)
    _assert_one_line_failure(result, "install blurgen[train]")


def test_cli_modules_do_not_import_torch_until_a_command_runs():
    code = ("import sys, blurgen, blurgen.deblur, blurgen.cli.eval_cmd, blurgen.cli.deblur_cmd;"
            "from blurgen.cli import main; main.list_commands(None);"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_eval_small_tile_is_a_usage_error(tmp_path, pairs_h5):
    result = CliRunner().invoke(main, ["eval", "--checkpoint", save_checkpoint(tmp_path / "g.pt"),
                                       "--data", pairs_h5, "--tile", "16"])
    assert result.exit_code == 2 and "--tile" in result.output and "Traceback" not in result.output


def test_eval_of_an_empty_or_too_small_source_fails_in_one_line(tmp_path, pairs_h5):
    import shutil

    import h5py

    ckpt = save_checkpoint(tmp_path / "g.pt")
    empty = tmp_path / "empty.h5"
    shutil.copy(pairs_h5, empty)
    with h5py.File(empty, "r+") as h5:
        h5.attrs["n_written"] = 0
    _assert_one_line_failure(CliRunner().invoke(main, ["eval", "--checkpoint", ckpt, "--data", str(empty)]),
                             "no complete samples")
    tiny = make_gopro_tree(tmp_path / "tiny", sequences=1, frames=1, size=(8, 6))
    _assert_one_line_failure(CliRunner().invoke(main, ["eval", "--checkpoint", ckpt, "--data", f"gopro:{tiny}"]),
                             "11x11")


def test_deblur_refuses_to_overwrite_its_inputs(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (40, 37, 3), dtype=np.uint8)
    _write(tmp_path / "img" / "a.png", image)
    before = (tmp_path / "img" / "a.png").read_bytes()
    result = CliRunner().invoke(main, ["deblur", "--checkpoint", save_checkpoint(tmp_path / "g.pt"),
                                       str(tmp_path / "img" / "a.png"), "--out", str(tmp_path / "img")])
    assert result.exit_code == 2 and "would overwrite an input" in result.output
    assert (tmp_path / "img" / "a.png").read_bytes() == before
