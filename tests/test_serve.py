"""i2i serve: the page's function, and the page itself in headless chromium."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

import pytest
from PIL import Image

from conftest import random_image
from i2i.errors import UsageError

gr = pytest.importorskip("gradio", reason="the ui extra is not installed (pip install 'i2i[ui]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    from i2i import nets
    from i2i.runs import save_weights

    path = tmp_path_factory.mktemp("serve") / "G.safetensors"
    spec = {"name": "resnet_6blocks", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "instance",
            "dropout": False}
    save_weights(path, nets.create(**spec), spec)
    return path


def test_page_function_returns_an_image_of_the_input_size(generator_file):
    from i2i.api import load
    from i2i.serve import translate_image

    model = load(generator_file, threads=1)
    out = translate_image(model, random_image(50, 30), "AtoB")
    assert isinstance(out, Image.Image) and out.size == (50, 30)
    with pytest.raises(UsageError, match="upload an image"):
        translate_image(model, None, "AtoB")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_page_loads_in_headless_chromium(generator_file, tmp_path):
    from i2i.serve import serve

    example = tmp_path / "example.png"
    random_image(64, 64).save(example)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = serve(generator_file, port=port, example=example, block=False, threads=1)
    try:
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                              "--dump-dom", f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                             timeout=120).stdout
    finally:
        app.close()
    assert "Upload an image, pick the direction" in dom
    assert re.search(r"Translate", dom)
