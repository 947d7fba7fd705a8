import atexit
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# measured precision choices (i2i.autoprecision) go to a folder of this session, not the user's cache
os.environ["I2I_CACHE_DIR"] = tempfile.mkdtemp(prefix="i2i-test-cache-")
atexit.register(shutil.rmtree, os.environ["I2I_CACHE_DIR"], ignore_errors=True)

SHARED = Path(__file__).resolve().parents[2] / "shared"


def load_tool(name: str):
    """The script ``tools/<name>.py`` as a module (tools/ is not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def random_image(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)


def ab_folder(root, halves=((32, 32),) * 6):
    """``root`` filled with side-by-side A|B images ``i.png``, one per (width, height) of ``halves``:
    A random (seed i), B = A inverted. Returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(halves):
        a = np.asarray(random_image(w, h, seed=i))
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / f"{i}.png")
    return root


@pytest.fixture
def aligned_dir(tmp_path):
    """A folder of 6 side-by-side A|B images, 64x32 (A = random, B = A inverted)."""
    return ab_folder(tmp_path / "ab")


def tiny_config(data, tmp_path, **overrides):
    from i2i.modes import make_config

    options = dict(a=str(data), name="tiny", checkpoints_dir=str(tmp_path / "ck"), net_g="unet_32", ngf=8, ndf=8,
                   load_size=36, crop_size=32, epochs=1, epochs_decay=1, workers=0, seed=1, sample_every=1000,
                   save_every=1000, report=False)
    options.update(overrides)
    return make_config("pix2pix", **options)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True)
def _reset_i2i_logger():
    """The CLI points the "i2i" logger at its own console; undo that so caplog sees records."""
    import logging

    yield
    logger = logging.getLogger("i2i")
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one thread: for tiny tensors, thread hand-offs cost more than they save."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def unpaired_dirs(tmp_path):
    """Two folders of different sizes: 5 images in A/ (one grayscale), 3 in B/sub/ (32x40)."""
    a, b = tmp_path / "A", tmp_path / "B" / "sub"
    a.mkdir()
    b.mkdir(parents=True)
    for i in range(5):
        random_image(32, 32, "L" if i == 4 else "RGB", seed=i).save(a / f"a{i}.png")
    for i in range(3):
        random_image(40, 32, seed=10 + i).save(b / f"b{i}.jpg")
    return tmp_path / "A", tmp_path / "B"


def tiny_unpaired_config(dirs, tmp_path, mode="cycle", **overrides):
    from i2i.modes import make_config

    a, b = dirs
    net_g = "resnet_6blocks" if mode == "cycle" else "unet_32"
    options = dict(a=str(a), b=str(b), name="tiny", checkpoints_dir=str(tmp_path / "ck"), net_g=net_g, ngf=4, ndf=4,
                   load_size=36, crop_size=32, epochs=1, epochs_decay=1, workers=0, seed=1, sample_every=1000,
                   save_every=1000, report=False)
    options.update(overrides)
    return make_config(mode, **options)
