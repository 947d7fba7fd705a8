import numpy as np
import pytest
import torch
from PIL import Image

from i2i.data.images import list_images, load_image, save_image
from i2i.data.paired import PairedDataset
from i2i.data.transforms import EpochSampler, Augment
from i2i.errors import ImageError, UsageError

from conftest import random_image


def test_same_crop_and_flip_for_both_halves():
    """With identical halves, any geometry difference between A and B would show up."""
    img = np.asarray(random_image(50, 40))
    t = Augment("resize_and_crop", 48, 32, flip=True, multiple=32)
    flips = set()
    for seed in range(20):
        a, b = t(img, img.copy(), seed)
        assert a.shape == (3, 32, 32)
        assert torch.equal(a, b)
        ref, _ = t(img, img, seed)
        assert torch.equal(a, ref)  # the seed fixes the augmentation
        plain = Augment("resize_and_crop", 48, 32, flip=False, multiple=32)(img, img, seed)[0]
        flips.add(bool(torch.equal(a, plain)))
    assert flips == {True, False}  # both flipped and unflipped samples occur


def test_different_seeds_give_different_crops():
    img = np.asarray(random_image(64, 64))
    t = Augment("crop", 64, 32, flip=False, multiple=32)
    crops = {t(img, img, seed)[0].sum().item() for seed in range(10)}
    assert len(crops) > 5


@pytest.mark.parametrize("preprocess,expected", [
    ("resize_and_crop", (32, 32)), ("crop", (32, 32)), ("scale_width", (32, 64)),
    ("scale_width_and_crop", (32, 32)), ("none", (64, 96)),
])
def test_preprocess_output_sizes(preprocess, expected):
    img = np.asarray(random_image(100, 70))  # w=100, h=70
    a, b = Augment(preprocess, 64, 32, flip=False, multiple=32)(img, img, 0)
    assert a.shape[1:] == expected and b.shape == a.shape
    assert a.min() >= -1 and a.max() <= 1


def test_sampler_is_a_function_of_seed_and_epoch():
    s = EpochSampler(10, seed=3)
    first = list(s)
    assert sorted(i for i, _ in first) == list(range(10))
    assert list(s) == first
    s.epoch = 1
    assert list(s) != first
    s.epoch, s.start = 0, 4
    assert list(s) == first[4:]


def test_dataloader_workers_do_not_repeat_crops(aligned_dir):
    """Per-sample seeds: 2 workers give the same (distinct) crops as 0 workers."""
    ds = PairedDataset(aligned_dir, transform=Augment("resize_and_crop", 48, 32, True, 32))
    def crops(workers):
        loader = torch.utils.data.DataLoader(ds, batch_size=1, sampler=EpochSampler(len(ds), 0), num_workers=workers)
        return [batch["A"] for batch in loader]
    serial, parallel = crops(0), crops(2)
    assert all(torch.equal(x, y) for x, y in zip(serial, parallel))
    offsets = {tuple(x.flatten()[:8].tolist()) for x in parallel}
    assert len(offsets) == len(parallel)


def test_aligned_split_and_direction(aligned_dir):
    ab = PairedDataset(aligned_dir)
    item = ab[(0, 0)]
    assert torch.allclose(item["A"], -item["B"], atol=1e-2)  # B is A inverted
    ba = PairedDataset(aligned_dir, direction="BtoA")
    assert torch.equal(ba[(0, 0)]["A"], item["B"])


def test_two_folders_matched_by_stem(tmp_path):
    for side in "AB":
        (tmp_path / side / "sub").mkdir(parents=True)
    random_image(16, 16, seed=1).save(tmp_path / "A" / "sub" / "x.jpg")
    random_image(24, 24, seed=2).save(tmp_path / "B" / "sub" / "x.png")  # other size: resized to A's
    ds = PairedDataset(tmp_path)  # finds A/ and B/
    item = ds[(0, 0)]
    assert item["A"].shape == item["B"].shape == (3, 16, 16)
    random_image(16, 16).save(tmp_path / "A" / "y.png")
    assert len(PairedDataset(tmp_path / "A", tmp_path / "B")) == 1  # the unmatched file is skipped
    with pytest.raises(UsageError, match="no partner"):
        PairedDataset(tmp_path / "A", tmp_path / "B", strict=True)


def test_odd_width_is_skipped_or_with_strict_an_error(tmp_path):
    random_image(32, 16).save(tmp_path / "even.png")
    random_image(33, 16).save(tmp_path / "odd.png")
    assert [p.name for p, _ in PairedDataset(tmp_path).items] == ["even.png"]
    with pytest.raises(UsageError, match="odd.png: width 33 is odd"):
        PairedDataset(tmp_path, strict=True)


def test_unreadable_files_skipped_with_warning(aligned_dir, caplog):
    (aligned_dir / "broken.jpg").write_bytes(b"not a jpeg")
    (aligned_dir / "empty.png").write_bytes(b"")
    ds = PairedDataset(aligned_dir)
    assert len(ds) == 6
    assert "skipped 2 unreadable" in caplog.text


def test_file_going_bad_mid_training_is_skipped(aligned_dir, caplog):
    ds = PairedDataset(aligned_dir)
    ds.items[0][0].write_bytes(b"garbage")
    item = ds[(0, 0)]
    assert item["path"] != str(ds.items[0][0])
    assert "0.png: not an image" in caplog.text


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(UsageError, match="no images"):
        PairedDataset(tmp_path)
    with pytest.raises(UsageError, match="no such folder"):
        PairedDataset(tmp_path / "missing")


def test_list_images_skips_hidden_and_non_images(tmp_path):
    random_image(4, 4).save(tmp_path / "a.png")
    random_image(4, 4).save(tmp_path / ".hidden.png")
    (tmp_path / ".git").mkdir()
    random_image(4, 4).save(tmp_path / ".git" / "b.png")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.png"]


def test_load_image_modes_and_errors(tmp_path):
    rgba = random_image(5, 4, "RGBA")
    rgba.save(tmp_path / "x.png")
    assert load_image(tmp_path / "x.png").mode == "RGB"
    assert load_image(tmp_path / "x.png", channels=1).mode == "L"
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8junk")
    with pytest.raises(ImageError, match="bad.jpg"):
        load_image(tmp_path / "bad.jpg")


def test_exif_orientation_applied(tmp_path):
    img = random_image(6, 4)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").size == (4, 6)


def test_save_image_is_atomic_and_keeps_format(tmp_path):
    img = random_image(8, 8)
    save_image(img, tmp_path / "o" / "x.jpg")
    assert Image.open(tmp_path / "o" / "x.jpg").format == "JPEG"
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["x.jpg"]  # no temp files left
