"""Checks on the real datasets in ../shared/datasets; skipped where they are absent."""

import pytest

from conftest import SHARED

FACADES = SHARED / "datasets" / "facades"
needs_facades = pytest.mark.skipif(not FACADES.is_dir(), reason=f"{FACADES} is not on this machine")


@needs_facades
def test_facades_loads_as_aligned_pairs():
    from i2i.data.paired import PairedDataset
    from i2i.data.transforms import Augment

    ds = PairedDataset(FACADES, direction="BtoA", transform=Augment("resize_and_crop", 286, 256, True, 256))
    assert len(ds) == 400  # facades/ resolves to facades/train
    item = ds[(0, 7)]
    assert item["A"].shape == item["B"].shape == (3, 256, 256)
    assert "train" in item["path"]


@needs_facades
@pytest.mark.slow
def test_facades_default_training_steps(tmp_path):
    """Three steps at the full defaults (unet_256, 256x256) on the real data, then translate a test image."""
    from i2i.modes import make_config
    from i2i.train import train
    from i2i.translate import translate_files
    from i2i.translator import load_translator

    cfg = make_config("pix2pix", a=str(FACADES / "train"), name="f", checkpoints_dir=str(tmp_path), direction="BtoA",
                      max_steps=3, workers=1, seed=0)
    run = train(cfg)
    summary = translate_files(load_translator(run), [str(FACADES / "test" / "1.jpg")], tmp_path / "out")
    assert summary.written == 1
