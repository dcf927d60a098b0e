"""Data for the DeblurGAN: HDF5 pairs dataset, GoPro tree, mixing sampler."""

from __future__ import annotations

import pickle
from collections import Counter

import h5py
import numpy as np
import pytest
import torch
from deblur_fixtures import make_gopro_tree, make_pairs_arrays, write_pairs
from torch.utils.data import DataLoader

from blurgen.deblur.data import (
    DataError,
    GoProPairs,
    MixedPairs,
    MixingSampler,
    PairsDataset,
    PairsFileError,
    make_loader,
    normalize,
    to_tensor,
    to_uint8,
)

torch.set_num_threads(1)


@pytest.fixture
def inverted_pairs(tmp_path):
    """blurred = 255 - sharp, so an aligned crop of a pair satisfies blurred_t == -sharp_t."""
    _, sharp, _ = make_pairs_arrays(6, size=40, seed=1)
    return write_pairs(tmp_path / "inv.h5", 255 - sharp, sharp)


def test_to_tensor_range_and_round_trip():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = to_tensor(image)
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32
    assert t.min() >= -1 and t.max() <= 1
    np.testing.assert_array_equal(to_uint8(t), image)


def test_uint8_crops_normalize_to_the_float_crops(inverted_pairs):
    as_float = PairsDataset(inverted_pairs, crop=16, seed=1)[(3, 11)]
    as_bytes = PairsDataset(inverted_pairs, crop=16, seed=1, as_uint8=True)[(3, 11)]
    assert as_bytes[0].dtype == torch.uint8 and as_bytes[0].shape == (3, 16, 16)
    for f, b in zip(as_float, as_bytes):
        torch.testing.assert_close(normalize(b), f, rtol=0, atol=1e-6)


def test_pairs_dataset_crops_are_aligned_and_in_range(inverted_pairs):
    ds = PairsDataset(inverted_pairs, crop=16, flip=True, seed=3)
    for position in range(20):
        blurred, sharp = ds[(position % len(ds), position)]
        assert blurred.shape == sharp.shape == (3, 16, 16)
        assert blurred.dtype == torch.float32 and -1 <= blurred.min() and blurred.max() <= 1
        torch.testing.assert_close(blurred, -sharp, rtol=0, atol=1e-6)


def test_crop_depends_only_on_seed_and_position(inverted_pairs):
    ds = PairsDataset(inverted_pairs, crop=16, seed=3)
    a, b = ds[(2, 7)], ds[(2, 7)]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    others = [ds[(2, p)][1] for p in range(8, 14)]
    assert any(not torch.equal(a[1], o) for o in others)
    other_seed = PairsDataset(inverted_pairs, crop=16, seed=4)
    assert any(not torch.equal(ds[(2, p)][1], other_seed[(2, p)][1]) for p in range(6))


def test_integer_index_without_augmentation_is_a_centre_crop(tmp_path):
    blurred, sharp, _ = make_pairs_arrays(2, size=40, seed=0)
    path = write_pairs(tmp_path / "p.h5", blurred, sharp)
    b, s = PairsDataset(path, crop=16, random_crop=False, flip=False)[1]
    np.testing.assert_array_equal(to_uint8(s), sharp[1, 12:28, 12:28])
    np.testing.assert_array_equal(to_uint8(b), blurred[1, 12:28, 12:28])
    whole = PairsDataset(path, crop=None, flip=False)[0][1]
    assert whole.shape == (3, 40, 40)


def test_a_plain_shuffling_dataloader_gets_random_crops_and_flips_repeatable_by_torch_seed(tmp_path):
    """What a user's own loop does: DataLoader(PairsDataset(...), shuffle=True) with int indices."""
    blurred, sharp, _ = make_pairs_arrays(4, size=40, seed=0)
    path = write_pairs(tmp_path / "p.h5", blurred, sharp)
    dataset = PairsDataset(path, crop=16, flip=True)

    def epochs(seed):
        torch.manual_seed(seed)
        loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=0)
        return [torch.cat([s for _, s in loader]) for _ in range(3)]
    first, again = epochs(1), epochs(1)
    for a, b in zip(first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    crops = {to_uint8(dataset[0][1]).tobytes() for _ in range(12)}
    assert len(crops) > 3, "the same crop every time"
    whole = PairsDataset(path, crop=None, flip=True)
    views = {"same": lambda a: a, "h": lambda a: a[:, ::-1], "v": lambda a: a[::-1], "hv": lambda a: a[::-1, ::-1]}
    seen = set()
    for _ in range(40):
        b, s = (to_uint8(t) for t in whole[0])
        kind = next(k for k, f in views.items() if np.array_equal(s, f(sharp[0])))
        np.testing.assert_array_equal(b, views[kind](blurred[0]))  # the pair flipped alike
        seen.add(kind)
    assert seen == set(views), seen


def test_indices_select_a_held_out_slice(tmp_path):
    blurred, sharp, _ = make_pairs_arrays(5, size=32, seed=0)
    path = write_pairs(tmp_path / "p.h5", blurred, sharp)
    ds = PairsDataset(path, crop=None, indices=[3, 4], flip=False)
    assert len(ds) == 2
    np.testing.assert_array_equal(to_uint8(ds[1][1]), sharp[4])


def test_dataset_pickles_without_an_open_file(inverted_pairs):
    ds = PairsDataset(inverted_pairs, crop=16)
    ds[0]  # opens the file in this process
    state = pickle.dumps(ds)
    assert b"h5py" not in state
    clone = pickle.loads(state)
    torch.testing.assert_close(clone[(1, 5)], ds[(1, 5)])


def test_dataloader_workers_give_the_same_batches_as_the_main_process(inverted_pairs):
    ds = MixedPairs([PairsDataset(inverted_pairs, crop=16, seed=2)])
    sampler = MixingSampler([6], [1], seed=2, batch_size=3, total_steps=4)
    main = [b for b in DataLoader(ds, batch_sampler=sampler, num_workers=0)]
    workers = [b for b in make_loader(ds, sampler, workers=2)]
    assert len(main) == len(workers) == 4
    for (b0, s0), (b1, s1) in zip(main, workers):
        assert b0.shape == (3, 3, 16, 16)
        torch.testing.assert_close(b0, b1, rtol=0, atol=0)
        torch.testing.assert_close(s0, s1, rtol=0, atol=0)


def test_foreign_hdf5_is_rejected_in_one_line(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(PairsFileError) as info:
        PairsDataset(path, crop=16)
    assert "not a blurgen pairs file" in str(info.value) and "\n" not in str(info.value)


def test_crop_larger_than_images_is_a_data_error(inverted_pairs):
    with pytest.raises(DataError, match="smaller than the crop"):
        PairsDataset(inverted_pairs, crop=64)


def test_empty_file_is_a_data_error(tmp_path):
    blurred, sharp, _ = make_pairs_arrays(2, size=32)
    path = write_pairs(tmp_path / "p.h5", blurred, sharp, n_written=0)
    with pytest.raises(DataError, match="no complete samples"):
        PairsDataset(path, crop=16)


# --- GoPro ------------------------------------------------------------------------------------

def test_gopro_pairs_read_the_split_in_order(tmp_path):
    root = make_gopro_tree(tmp_path / "GOPRO", sequences=2, frames=3, size=(48, 36))
    ds = GoProPairs(root, split="train", crop=32)
    assert len(ds) == 6
    assert [p[1].parent.parent.name for p in ds.pairs] == ["GOPR0000_11_00"] * 3 + ["GOPR0001_11_00"] * 3
    blurred, sharp = ds[(4, 9)]
    assert blurred.shape == sharp.shape == (3, 32, 32)
    gamma = GoProPairs(root, split="test", blur_folder="blur_gamma", crop=None)
    assert gamma.pairs[0][0].parent.name == "blur_gamma" and gamma[0][0].shape == (3, 36, 48)


def test_gopro_root_without_sharp_folders_is_rejected(tmp_path):
    (tmp_path / "train" / "GOPR0000_11_00" / "blur").mkdir(parents=True)
    with pytest.raises(DataError, match="no train/\\*/sharp folders"):
        GoProPairs(tmp_path)
    with pytest.raises(DataError, match="no test/ folder"):
        GoProPairs(tmp_path, split="test")


def test_gopro_mismatched_counts_are_rejected(tmp_path):
    root = make_gopro_tree(tmp_path / "GOPRO", sequences=1, frames=3, splits=("train",))
    (root / "train" / "GOPR0000_11_00" / "blur" / "000001.png").unlink()
    with pytest.raises(DataError, match="2 blur frames vs 3 sharp frames"):
        GoProPairs(root)


def test_gopro_crop_larger_than_frames_names_the_file(tmp_path):
    root = make_gopro_tree(tmp_path / "GOPRO", sequences=1, frames=1, size=(40, 30), splits=("train",))
    with pytest.raises(DataError, match=r"no usable frame pair \(smaller than 32 px: 1; first: GOPR0000_11_00/000000.png"):
        GoProPairs(root, crop=32)


def test_bad_gopro_frames_are_left_out_or_replaced_not_fatal(tmp_path, caplog):
    """A too-small pair, blur/sharp of different sizes, an unreadable header: left out when the
    tree is opened (all views with one min_side agree); a frame whose header reads but whose data
    does not: replaced by the next pair, deterministically."""
    import cv2

    root = make_gopro_tree(tmp_path / "GOPRO", sequences=1, frames=6, size=(48, 40), splits=("train",))
    seq = root / "train" / "GOPR0000_11_00"
    assert cv2.imwrite(str(seq / "blur" / "000001.png"), np.zeros((30, 48, 3), np.uint8))  # sizes differ
    for folder in ("blur", "sharp"):
        assert cv2.imwrite(str(seq / folder / "000002.png"), np.zeros((20, 20, 3), np.uint8))  # too small
    (seq / "sharp" / "000003.png").write_bytes(b"not a png")  # unreadable header
    good = (seq / "sharp" / "000004.png").read_bytes()
    (seq / "sharp" / "000004.png").write_bytes(good[:60])  # header fine, data truncated
    ds = GoProPairs(root, crop=32, flip=False)
    assert dict(ds.skipped) == {"blur/sharp sizes differ": 1, "smaller than 32 px": 1, "unreadable": 1}
    assert [p[1].name for p in ds.pairs] == ["000000.png", "000004.png", "000005.png"]
    assert "left out" in caplog.text
    replaced, again = ds[(1, 0)], GoProPairs(root, crop=32, flip=False)[(1, 0)]
    assert all(torch.equal(a, b) for a, b in zip(replaced, again))
    assert ds[(1, 0)][0].shape == (3, 32, 32)
    assert len(GoProPairs(root, crop=16, min_side=32)) == 3


# --- mixing sampler ---------------------------------------------------------------------------

def test_ratio_two_to_one_holds_in_every_cycle():
    sampler = MixingSampler([10, 7], [2, 1], seed=0)
    sources = [sampler.key(g)[0] for g in range(300)]
    for start in range(0, 300, 3):
        assert Counter(sources[start:start + 3]) == {0: 2, 1: 1}
    assert sources[:30] != [0, 0, 1] * 10  # the order inside a cycle is shuffled


def test_each_source_epoch_visits_every_sample_once():
    sampler = MixingSampler([10, 7], [2, 1], seed=5)
    keys = [sampler.key(g) for g in range(3 * 14)]  # 28 synthetic draws, 14 GoPro draws
    synthetic = [i for s, i, _ in keys if s == 0]
    gopro = [i for s, i, _ in keys if s == 1]
    assert sorted(synthetic[:10]) == list(range(10)) and sorted(synthetic[10:20]) == list(range(10))
    assert synthetic[:10] != synthetic[10:20]  # a fresh order each epoch
    assert sorted(gopro[:7]) == list(range(7)) and sorted(gopro[7:14]) == list(range(7))


def test_sampler_is_deterministic_and_resumes_mid_stream():
    full = list(MixingSampler([9, 4], [2, 1], seed=3, batch_size=2, total_steps=20))
    again = list(MixingSampler([9, 4], [2, 1], seed=3, batch_size=2, total_steps=20))
    resumed = list(MixingSampler([9, 4], [2, 1], seed=3, batch_size=2, start_step=13, total_steps=20))
    other = list(MixingSampler([9, 4], [2, 1], seed=4, batch_size=2, total_steps=20))
    assert full == again and resumed == full[13:] and other != full
    assert len(MixingSampler([9, 4], [2, 1], start_step=13, total_steps=20)) == 7


def test_ranks_split_the_global_batch_of_one_process():
    single = MixingSampler([9, 4], [2, 1], seed=1, batch_size=6, total_steps=5)
    ranks = [MixingSampler([9, 4], [2, 1], seed=1, batch_size=3, rank=r, world_size=2, total_steps=5)
             for r in range(2)]
    for step, batch in enumerate(single):
        assert ranks[0].batch(step) + ranks[1].batch(step) == batch


def test_single_source_and_zero_share():
    only_gopro = MixingSampler([0, 5], [0, 1], seed=0)
    assert {only_gopro.key(g)[0] for g in range(20)} == {1}
    with pytest.raises(ValueError, match="source 1 a share 1 but it has no samples"):
        MixingSampler([5, 0], [2, 1])
    with pytest.raises(ValueError, match="at least one > 0"):
        MixingSampler([5, 5], [0, 0])
