"""Sharp sources: dead leaves, directories of images (with bad files), GoPro trees."""

from __future__ import annotations

import logging
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blurgen.core.imageio import _jpeg_header, _png_header, to_rgb_u8
from blurgen.sources.base import (
    DeadLeavesSource,
    GoProSource,
    ImageDirectorySource,
    Source,
    SourceError,
    open_source,
)
from blurgen.sources.deadleaves import dead_leaves, mean_disk_area, power_law_radii

# ---------------------------------------------------------------- dead leaves


def test_dead_leaves_is_deterministic_per_seed_and_index():
    source = DeadLeavesSource()
    a, index_a = source.crop(3, 17, 70, 90)
    b, _ = source.crop(3, 17, 70, 90)
    assert a.shape == (70, 90, 3) and a.dtype == np.uint8 and index_a == -1
    assert np.array_equal(a, b)
    assert not np.array_equal(a, source.crop(3, 18, 70, 90)[0])
    assert not np.array_equal(a, source.crop(4, 17, 70, 90)[0])


def test_dead_leaves_inset_is_the_centre_of_the_full_crop():
    source = DeadLeavesSource()
    full, _ = source.crop(1, 2, 80, 100)
    centre, _ = source.crop(1, 2, 80, 100, inset=13)
    assert np.array_equal(centre, full[13:-13, 13:-13])


@settings(max_examples=25, deadline=None)
@given(height=st.integers(1, 90), width=st.integers(1, 90), data=st.data())
def test_a_dead_leaves_window_is_that_part_of_the_full_picture(height, width, data):
    y = data.draw(st.integers(0, height - 1))
    x = data.draw(st.integers(0, width - 1))
    h = data.draw(st.integers(1, height - y))
    w = data.draw(st.integers(1, width - x))
    seed = data.draw(st.integers(0, 2**32))
    full = dead_leaves(height, width, np.random.default_rng(seed))
    part = dead_leaves(height, width, np.random.default_rng(seed), window=(y, x, h, w))
    assert np.array_equal(part, full[y:y + h, x:x + w])


def test_dead_leaves_has_occluding_leaves_of_many_sizes_and_colours():
    img = dead_leaves(200, 200, np.random.default_rng(0))
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 500
    assert 20 < img.mean() < 235 and img.std() > 25
    # Sharp occlusion edges: many large steps between neighbours, yet most neighbours similar.
    step = np.abs(np.diff(img.astype(int), axis=1)).max(axis=2)
    assert np.mean(step > 40) > 0.02 and np.mean(step < 10) > 0.4


def test_dead_leaves_spectrum_falls_like_natural_images():
    # Radially averaged power ~ f**-2 for exponent-3 dead leaves (and natural images).
    img = dead_leaves(256, 256, np.random.default_rng(1)).astype(np.float64).mean(axis=2)
    power = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean()))) ** 2
    yy, xx = np.mgrid[-128:128, -128:128]
    radius = np.hypot(yy, xx).astype(int)
    freqs = np.arange(4, 64)
    radial = np.array([power[radius == f].mean() for f in freqs])
    slope = np.polyfit(np.log(freqs), np.log(radial), 1)[0]
    assert -3.0 < slope < -1.5


def test_power_law_radii_stay_in_bounds_and_follow_the_law():
    u = (np.arange(100_000) + 0.5) / 100_000
    r = power_law_radii(u, 2.0, 100.0, 3.0)
    assert r.min() >= 2.0 and r.max() <= 100.0
    # P(r > 4) for density ~ r**-3 on [2, 100] = (4**-2 - 100**-2) / (2**-2 - 100**-2)
    assert np.mean(r > 4) == pytest.approx((4.0 ** -2 - 1e-4) / (0.25 - 1e-4), abs=1e-3)
    assert mean_disk_area(2.0, 100.0, 3.0) == pytest.approx(np.pi * np.mean(r ** 2), rel=1e-3)


def test_dead_leaves_rejects_bad_sizes():
    with pytest.raises(ValueError):
        dead_leaves(0, 10, np.random.default_rng(0))
    with pytest.raises(ValueError):
        dead_leaves(10, 10, np.random.default_rng(0), r_min=8.0, r_max=4.0)


# ---------------------------------------------------------------- image files


def _write(path, image, params=()):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), image, list(params))


@pytest.fixture()
def messy_dir(tmp_path):
    """Good PNG + JPEG, grayscale, 16-bit, RGBA, a corrupt file, a truncated PNG, a too-small
    file and a text file, some in a sub-folder."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    good = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    _write(str(root / "a_good.png"), good)
    _write(str(root / "sub" / "b_photo.jpg"), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
           [cv2.IMWRITE_JPEG_QUALITY, 90])
    _write(str(root / "sub" / "c_gray.png"), np.full((50, 50), 77, np.uint8))
    _write(str(root / "d_16bit.png"), np.full((50, 50, 3), 65535, np.uint16))
    rgba = np.zeros((50, 50, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # BGRA: blue 200, fully transparent
    _write(str(root / "e_alpha.png"), rgba)
    (root / "f_corrupt.png").write_bytes(b"this is not an image" * 10)
    data = (root / "a_good.png").read_bytes()
    (root / "g_truncated.png").write_bytes(data[:60])  # header fine, pixels missing
    _write(str(root / "h_tiny.png"), np.zeros((10, 10, 3), np.uint8))
    (root / "notes.txt").write_text("not an image")
    return root, good


def test_directory_source_converts_and_skips_with_counts(messy_dir, caplog):
    root, good = messy_dir
    with caplog.at_level(logging.WARNING, logger="blurgen.sources.base"):
        source = ImageDirectorySource(str(root), min_size=(40, 40))
    assert dict(source.skipped) == {"corrupt": 1, "too_small": 1}
    assert dict(source.converted) == {"grayscale": 1, "16bit": 1, "alpha": 1}
    assert source.n_images == 6 and isinstance(source, Source)
    assert [os.path.basename(p) for p in source.paths] == [
        "a_good.png", "d_16bit.png", "e_alpha.png", "g_truncated.png", "b_photo.jpg", "c_gray.png"]
    assert any("skipped" in r.message for r in caplog.records)
    seen = {}
    for i in range(120):  # crops never crash, whatever file they hit
        crop, j = source.crop(0, i, 40, 40)
        assert crop.shape == (40, 40, 3) and crop.dtype == np.uint8
        seen.setdefault(os.path.basename(source.paths[j]), crop)
    assert "g_truncated.png" not in seen and source.skipped["failed_decode"] == 1
    assert np.all(seen["c_gray.png"] == 77)
    assert np.all(seen["d_16bit.png"] == 255)
    assert np.all(seen["e_alpha.png"] == [0, 0, 200])  # RGB, alpha dropped
    found = False
    for y in range(good.shape[0] - 39):  # a crop of the good PNG is a window of it, in RGB
        for x in range(good.shape[1] - 39):
            found |= np.array_equal(seen["a_good.png"], good[y:y + 40, x:x + 40, ::-1])
    assert found


def test_directory_crops_are_deterministic_and_random(messy_dir):
    root, _ = messy_dir
    one = ImageDirectorySource(str(root), min_size=(40, 40))
    two = ImageDirectorySource(str(root), min_size=(40, 40))
    crops = [one.crop(5, i, 40, 40) for i in range(20)]
    again = [two.crop(5, i, 40, 40) for i in reversed(range(20))][::-1]
    assert all(a[1] == b[1] and np.array_equal(a[0], b[0]) for a, b in zip(crops, again))
    assert len({c[1] for c in crops}) > 2
    full, j = one.crop(5, 3, 40, 40)
    centre, j2 = one.crop(5, 3, 40, 40, inset=7)
    assert j == j2 and np.array_equal(centre, full[7:-7, 7:-7])


def test_crops_are_windows_of_the_converted_image_and_own_their_memory(tmp_path):
    """Crops convert only their window (gray, 16-bit, alpha, float TIFF): the same pixels as
    converting the whole decoded image first; a caller writing into a crop changes nothing else."""
    rng = np.random.default_rng(1)
    files = {"gray.png": rng.integers(0, 256, (48, 52), dtype=np.uint8),
             "deep.png": rng.integers(0, 65536, (48, 52, 3), dtype=np.uint16),
             "alpha.png": rng.integers(0, 256, (48, 52, 4), dtype=np.uint8),
             "colour.png": rng.integers(0, 256, (48, 52, 3), dtype=np.uint8),
             "float.tiff": rng.random((48, 52, 3), dtype=np.float32) * 1.2 - 0.1}
    for name, image in files.items():
        _write(str(tmp_path / name), image)
    source = ImageDirectorySource(str(tmp_path), min_size=(40, 40))
    whole = [to_rgb_u8(cv2.imread(p, cv2.IMREAD_UNCHANGED)) for p in source.paths]
    hit = set()
    for i in range(60):
        crop, j = source.crop(2, i, 40, 40, inset=i % 5)
        inset = i % 5
        windows = [whole[j][y + inset:y + 40 - inset, x + inset:x + 40 - inset]
                   for y in range(whole[j].shape[0] - 39) for x in range(whole[j].shape[1] - 39)]
        assert any(np.array_equal(crop, w) for w in windows)
        again, _ = source.crop(2, i, 40, 40, inset=inset)
        crop[...] = 0
        assert np.array_equal(again, source.crop(2, i, 40, 40, inset=inset)[0]) and again.any()
        hit.add(j)
    assert len(hit) == len(files)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_hostile_files_are_skipped_never_fatal(tmp_path):
    """A file name that is not UTF-8 (cv2.imread segfaulted on it), a FIFO named like an image
    (open() blocked for ever), a PNG whose header claims 100000x100000 pixels (OpenCV refuses to
    decode it: it used to abort the run) and an int32 TIFF (decodes, but is no image here)."""
    rng = np.random.default_rng(2)
    root = tmp_path / "odd"
    good = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    _write(str(root / "good.png"), good)
    for ext in (b".png", b".bmp"):
        with open(os.path.join(os.fsencode(root), b"caf\xe9" + ext), "wb") as handle:
            handle.write(cv2.imencode(ext.decode(), good)[1].tobytes())
    os.mkfifo(root / "pipe.png")
    os.mkfifo(root / "pipe.bmp")
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    (root / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(b"\0" * 99))
                                    + _png_chunk(b"IEND", b""))
    assert cv2.imwrite(str(root / "int.tif"), np.zeros((50, 50), np.int32))
    source = ImageDirectorySource(str(root), min_size=(40, 40))
    assert dict(source.skipped) == {"corrupt": 3}  # the two FIFOs and the int32 TIFF
    assert sorted(os.path.basename(p) for p in source.paths) == ["bomb.png", "caf\udce9.bmp", "caf\udce9.png",
                                                                  "good.png"]
    used = {source.crop(0, i, 40, 40)[1] for i in range(80)}
    assert source.skipped["failed_decode"] == 1 and source.paths.index(str(root / "bomb.png")) not in used
    assert len(used) == 3


def test_crop_larger_than_the_scanned_minimum_is_refused(messy_dir):
    root, _ = messy_dir
    with pytest.raises(ValueError, match="larger"):
        ImageDirectorySource(str(root), min_size=(40, 40)).crop(0, 0, 41, 40)


def test_empty_missing_and_only_corrupt_directories_raise_source_error(tmp_path):
    with pytest.raises(SourceError, match="no image files"):
        open_source(str(tmp_path))
    with pytest.raises(SourceError, match="not a directory"):
        open_source(str(tmp_path / "missing"))
    (tmp_path / "x.png").write_bytes(b"garbage")
    (tmp_path / "y.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(SourceError, match=r"corrupt 2") as info:
        open_source(str(tmp_path))
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_only_too_small_images_raise_source_error(tmp_path):
    _write(str(tmp_path / "small.png"), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(SourceError, match="too_small 1"):
        open_source(str(tmp_path), min_size=(64, 64))


def test_headerprobe_images_match_decoded_shapes(tmp_path):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cases = [("p.png", image, []), ("g.png", image[:, :, 0], []),
             ("b.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80]),
             ("prog.jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
             ("gray.jpg", image[:, :, 0], [])]
    for name, img, params in cases:
        path = str(tmp_path / name)
        _write(path, img, params)
        if name.endswith(".png"):
            with open(path, "rb") as f:
                info = _png_header(f.read(26))
        else:
            info = _jpeg_header(path)
        assert info[:3] == (37, 53, 1 if img.ndim == 2 else 3), name


def test_to_rgb_u8_conversions():
    assert to_rgb_u8(np.full((2, 2), 9, np.uint8)).tolist() == [[[9] * 3] * 2] * 2
    assert to_rgb_u8(np.full((1, 1, 3), 32896, np.uint16)).tolist() == [[[128] * 3]]
    assert to_rgb_u8(np.array([[[1, 2, 3, 4]]], np.uint8)).tolist() == [[[3, 2, 1]]]
    assert to_rgb_u8(np.zeros((2, 2, 2), np.uint8)) is None


# ---------------------------------------------------------------- GoPro


@pytest.fixture()
def gopro_root(tmp_path):
    """GOPRO_Large shape: {train,test}/GOPRxxxx_xx_xx/{blur,blur_gamma,sharp}/NNNNNN.png, with
    each split's sharp frames one constant colour and the blurred frames another."""
    root = tmp_path / "GOPRO_Large"
    for split, sequences, value in (("train", ["GOPR0372_07_00", "GOPR0374_11_00"], 40),
                                    ("test", ["GOPR0384_11_00"], 200)):
        for seq in sequences:
            for frame in range(2):
                for kind, v in (("sharp", value), ("blur", 123), ("blur_gamma", 124)):
                    _write(str(root / split / seq / kind / f"{frame:06d}.png"),
                           np.full((48, 64, 3), v, np.uint8))
    return root


def test_gopro_uses_sharp_frames_of_train_by_default(gopro_root):
    source = open_source(f"gopro:{gopro_root}", min_size=(40, 40))
    assert isinstance(source, GoProSource) and source.n_images == 4
    assert all(f"{os.sep}train{os.sep}" in p and f"{os.sep}sharp{os.sep}" in p for p in source.paths)
    crop, j = source.crop(0, 0, 40, 40)
    assert np.all(crop == 40) and 0 <= j < 4


def test_gopro_test_split(gopro_root):
    source = open_source(f"gopro:{gopro_root}", split="test", min_size=(40, 40))
    assert source.n_images == 2 and np.all(source.crop(0, 0, 40, 40)[0] == 200)


def test_gopro_bad_trees_raise_source_error(gopro_root, tmp_path):
    with pytest.raises(SourceError, match="no train/ folder"):
        open_source(f"gopro:{tmp_path / 'nowhere'}")
    empty = tmp_path / "empty"
    (empty / "train" / "GOPR0001_00_00" / "blur").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"no train/\*/sharp folders"):
        open_source(f"gopro:{empty}")
    with pytest.raises(ValueError, match="split"):
        GoProSource(str(gopro_root), split="val")


def test_open_source_default_is_dead_leaves():
    assert isinstance(open_source("deadleaves"), DeadLeavesSource)
