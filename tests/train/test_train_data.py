"""The data pipeline: skipping bad files with a warning, deterministic patches, on-the-fly LR."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from esrgan.errors import TrainingError
from esrgan.train.data import PatchDataset, batches, scan_images
from esrgan.train.imresize import downscale_uint8, mod_crop
from tests.conftest import photo
from tests.train.conftest import write_png


def test_scan_skips_unreadable_and_small_files_naming_them(train_dir, caplog):
    (train_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_png(train_dir / "small.png", photo("chelsea")[:20, :40])
    (train_dir / "notes.txt").write_text("ignored: not an image extension")
    with caplog.at_level(logging.WARNING, logger="esrgan.train"):
        paths = scan_images(train_dir, 32)
    assert sorted(p.name for p in paths) == ["astronaut.png", "coffee.png", "rocket.jpg"]
    text = caplog.text
    assert "broken.png" in text and "unreadable" in text
    assert "small.png" in text and "smaller than the 32 px" in text


def test_empty_or_useless_folders_are_training_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="no images found"):
        scan_images(tmp_path / "empty", 32)
    write_png(tmp_path / "small" / "a.png", photo("chelsea")[:10, :10])
    with pytest.raises(TrainingError, match="none of the 1 image"):
        scan_images(tmp_path / "small", 32)
    with pytest.raises(TrainingError, match="does not exist"):
        scan_images(tmp_path / "missing", 32)


def test_items_are_a_pure_function_of_seed_and_position(train_dir):
    paths = scan_images(train_dir, 32)
    a = PatchDataset(paths, 32, 4, seed=3)
    b = PatchDataset(paths, 32, 4, seed=3, cache=True)
    lr, hr = a[17]
    lr2, hr2 = b[17]
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32)
    assert not torch.equal(a[18][1], hr)
    # each epoch visits every image once
    assert sorted(a.order(5).tolist()) == [0, 1, 2]


def test_resumed_and_distributed_streams_see_the_same_batches(train_dir):
    ds = PatchDataset(scan_images(train_dir, 32), 32, 4, seed=0)
    full = batches(ds, batch_size=4, start_iter=0)
    first = [next(full)[1] for _ in range(3)]
    resumed = next(batches(ds, batch_size=4, start_iter=2))[1]
    assert torch.equal(resumed, first[2])
    rank0 = next(batches(ds, batch_size=4, start_iter=2, rank=0, world=2))[1]
    rank1 = next(batches(ds, batch_size=4, start_iter=2, rank=1, world=2))[1]
    assert torch.equal(torch.cat([rank0, rank1])[[0, 2, 1, 3]], first[2])
    with pytest.raises(TrainingError, match="not divisible"):
        batches(ds, batch_size=3, start_iter=0, world=2)


def test_worker_processes_produce_the_same_batches(train_dir):
    ds = PatchDataset(scan_images(train_dir, 32), 32, 4, seed=1)
    single = batches(ds, batch_size=2, start_iter=5)
    multi = batches(ds, batch_size=2, start_iter=5, workers=2)
    for _ in range(3):
        assert torch.equal(next(single)[1], next(multi)[1])


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _dihedral(img: np.ndarray) -> list[np.ndarray]:
    flips = [img, img[:, ::-1], img[::-1, :], img[::-1, ::-1]]
    return flips + [f.transpose(1, 0, 2) for f in flips]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lr_patch_is_the_crop_of_the_whole_image_lr(tmp_path, scale):
    # whole photographs (odd sizes, so mod-cropping matters) and many positions, borders included
    folder = tmp_path / "hr"
    write_png(folder / "coffee.png", photo("coffee")[:203, :301])
    write_png(folder / "rocket.png", photo("rocket")[:98, :130])
    paths = scan_images(folder, 48)
    plain = PatchDataset(paths, 48, scale, seed=2, augment=False)
    augmented = PatchDataset(paths, 48, scale, seed=2)
    ps = 48 // scale
    for position in range(24):
        img, top, left, _ = plain.spot(position)
        assert top % scale == 0 and left % scale == 0
        whole_lr = downscale_uint8(mod_crop(img, scale), scale)
        expected_lr = whole_lr[top // scale : top // scale + ps, left // scale : left // scale + ps]
        expected_hr = img[top : top + 48, left : left + 48]
        lr, hr = plain[position]
        np.testing.assert_array_equal(_u8(lr), expected_lr)
        np.testing.assert_array_equal(_u8(hr), expected_hr)
        # augmentation applies one and the same symmetry to both patches
        lr_aug, hr_aug = (_u8(t) for t in augmented[position])
        pairs = zip(_dihedral(expected_lr), _dihedral(expected_hr), strict=True)
        assert any(np.array_equal(lr_aug, a) and np.array_equal(hr_aug, b) for a, b in pairs)


def test_images_over_the_pixel_limit_are_skipped_in_one_line_without_raw_warnings(tmp_path, caplog, monkeypatch):
    """Limits shrunk so that a small image stands for a 100 MP photograph: Pillow warns above its
    MAX_IMAGE_PIXELS (raw lines with source code), the scan must refuse above MAX_PIXELS itself."""
    import warnings

    from PIL import Image

    from esrgan.train import data

    write_png(tmp_path / "huge.png", photo("chelsea")[:200, :200])  # 40,000 px: warned, not refused, by Pillow
    write_png(tmp_path / "fine.png", photo("chelsea")[:64, :64])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30_000)
    monkeypatch.setattr(data, "MAX_PIXELS", 35_000)
    with caplog.at_level(logging.WARNING, logger="esrgan.train"), warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        paths = scan_images(tmp_path, 32)
        data.load_rgb(tmp_path / "huge.png")  # a file loaded anyway (changed since the scan) is quiet too
    assert [p.name for p in paths] == ["fine.png"]
    lines = [r.getMessage() for r in caplog.records if "huge.png" in r.getMessage()]
    assert len(lines) == 1 and "more than 35000" in lines[0], lines
