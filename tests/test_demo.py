import re

import numpy as np
import pytest
from PIL import Image

from i2i.demo import COLOURS, make_dataset, run_demo
from i2i.errors import UsageError


def test_dataset_pairs_outline_and_fill(tmp_path):
    root = make_dataset(tmp_path / "d", n_train=6, n_test=2)
    files = sorted((root / "train").glob("*.png"))
    assert len(files) == 6 and len(list((root / "test").glob("*.png"))) == 2
    pair = np.asarray(Image.open(files[0]))
    a, b = pair[:, :64], pair[:, 64:]
    coloured = lambda x: (x != 255).any(axis=2).sum()  # noqa: E731
    assert coloured(b) > 2 * coloured(a) > 0  # the fill covers much more than the outline
    colours = {tuple(c) for c in b.reshape(-1, 3)} - {(255, 255, 255)}
    assert colours & set(COLOURS.values())


def test_demo_writes_a_page_with_every_image(tmp_path):
    page = run_demo(tmp_path / "demo", steps=2)
    html = page.read_text()
    sources = re.findall(r'src="([^"]+)"', html)
    assert len(sources) == 3 * 12
    for src in sources:
        assert Image.open(page.parent / src).size == (64, 64)
    with pytest.raises(UsageError, match="not empty"):
        run_demo(tmp_path / "demo", steps=2)


@pytest.mark.slow
def test_demo_learns_the_task(tmp_path):
    """The full demo (about a minute): outputs close to the targets, not noise."""
    page = run_demo(tmp_path / "demo")
    results = page.parent / "results"
    errors = [np.abs(np.asarray(Image.open(p), float) - np.asarray(Image.open(results / "target" / p.name), float)).mean() / 255
              for p in sorted((results / "output").glob("*.png"))]
    assert np.mean(errors) < 0.03, errors
