"""Tiled translation (i2i/tiling.py, i2i/data/regions.py): tiled equals whole, the plan's
invariants over every size, refusals whose advice works, streamed files, a killed run."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image
from typer.testing import CliRunner

from i2i import nets, tiling
from i2i.cli import app
from i2i.errors import UsageError
from i2i.runs import save_weights
from i2i.runtime import resolve
from i2i.translator import Translator

from conftest import random_image

SPECS = {
    "instance": {"name": "resnet_6blocks", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "instance"},
    "batch": {"name": "unet_32", "in_channels": 3, "out_channels": 3, "ngf": 4, "norm": "batch"},
}


def tiny(norm: str, precision: str = "fp32") -> Translator:
    rt = resolve("cpu", precision, threads=1)
    torch.manual_seed(0)
    net = nets.create(**SPECS[norm]).eval()
    return Translator(rt.prepare(net, training=False), SPECS[norm], None, "tiny", rt)


TRANSLATORS = {(n, p): tiny(n, p) for n in SPECS for p in ("fp32", "bf16")}


def psnr(a, b) -> float:
    mse = ((a - b) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(4 / mse)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "G.safetensors"
    torch.manual_seed(0)
    save_weights(path, nets.create(**SPECS["instance"]), SPECS["instance"])
    return path


# --- the plan ---------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 20000), tile=st.integers(8, 3000), overlap=st.integers(0, 1500),
       multiple=st.sampled_from([1, 4, 32, 256]), smallest=st.integers(1, 600))
def test_tiles_cover_every_side_in_phase_with_the_overlap(length, tile, overlap, multiple, smallest):
    tile = -(-max(tile, smallest) // multiple) * multiple
    overlap = min(overlap, tile // 2, tile - multiple)
    padded = -(-length // multiple) * multiple  # the padded side the tiles cut
    plan = tiling.TilePlan(tile, overlap, None, multiple, smallest)
    size, starts = plan.axis(length)  # any side (a log line asks of the unpadded one) has a plan
    assert starts[0] == 0 and starts[-1] + size == length and size <= max(tile, length)
    size, starts = plan.axis(padded)
    length = padded
    assert size <= tile or size == length
    assert size == length or size % multiple == 0
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(s % multiple == 0 for s in starts)
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))  # no gap, overlap kept
    weights = tiling.ramps(starts, size, length)
    total = tiling.weight_sum(starts, weights, length)
    assert bool((total > 0).all())  # every pixel has weight


@settings(max_examples=200, deadline=None)
@given(tile=st.integers(-5, 2000), overlap=st.integers(-3, 1200), norm=st.sampled_from(["instance", "batch"]))
def test_a_refused_tile_or_overlap_names_one_that_works(tile, overlap, norm):
    t = TRANSLATORS[(norm, "fp32")]
    try:
        tiling.check_tiling(t, tile, overlap)
        return
    except UsageError as e:
        message = str(e)
    assert "\n" not in message
    found = __import__("re").findall(r"give --(tile|overlap) (\d+)", message)
    if not found:
        assert "0 or more" in message and overlap < 0
        return
    (option, value), = found
    tiling.check_tiling(t, int(value) if option == "tile" else tile, int(value) if option == "overlap" else overlap)


# --- tiled equals whole -------------------------------------------------------------------------------

@settings(max_examples=12, deadline=None)
@given(norm=st.sampled_from(["instance", "batch"]), precision=st.sampled_from(["fp32", "bf16"]),
       h=st.integers(1, 3), w=st.integers(1, 3), extra_h=st.integers(0, 200), extra_w=st.integers(0, 200),
       seed=st.integers(0, 99))
def test_tiled_equals_whole_with_whole_image_statistics(norm, precision, h, w, extra_h, extra_w, seed):
    """Tiles at least four receptive fields wide, overlapping by half: every pixel that counts saw
    all it depends on, so tiled and whole agree to rounding (sizes not multiples of the tile)."""
    t = TRANSLATORS[(norm, precision)]
    m = t.multiple
    tile = -(-4 * tiling.receptive_field(t.net) // m) * m
    H, W = max(1, h * tile // 2 + extra_h - 100), max(1, w * tile // 2 + extra_w - 100)
    x = torch.rand(3, H, W, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    plan = tiling.plan_tiles(t, W, H, tile, tile // 2, max_memory=10**12)
    whole = t(x[None])[0]
    if plan is None:  # one tile: the untiled path itself
        assert H <= tile and W <= tile
        return
    y = tiling.translate_tensor(t, x, plan)
    assert y.shape == whole.shape
    assert psnr(y, whole) >= (70 if precision == "fp32" else 40)


def test_one_tile_image_is_the_untiled_path():
    t = TRANSLATORS[("instance", "fp32")]
    assert tiling.plan_tiles(t, 300, 200, 512, 64) is None
    assert tiling.plan_tiles(t, 300, 200, None, 64) is None  # fits any sensible memory


def test_thumbnail_statistics_differ_from_the_whole_images_but_stay_seam_free():
    """A thumbnail's statistics are an estimate (bench_tiles.py measures how good); tiles share them,
    so no tile differs from its neighbour by more than the image does."""
    t = TRANSLATORS[("instance", "fp32")]
    tile = 256
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 600, 600) * 2 - 1, 9, 1, 4)[0]
    plan = tiling.TilePlan(tile, 64, 150 * 150, t.multiple, tiling.min_tile(t))
    y = tiling.translate_tensor(t, x, plan)
    whole = t(x[None])[0]
    assert 10 < psnr(y, whole) < math.inf
    size, starts = plan.axis(600)
    edges = [s + size - 1 for s in starts[:-1]] + [s - 1 for s in starts[1:]]
    dx = (y[:, :, 1:] - y[:, :, :-1]).abs().mean(dim=(0, 1))
    inside = [i for i in range(599) if i not in edges]
    assert dx[edges].mean() < 1.1 * dx[inside].mean() + 1e-3


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_exact_streaming_statistics_match_the_whole_images(precision):
    """Where even the statistics pass must be tiled: one pass per norm layer, a tile at a time,
    gives the whole image's statistics (tiles wide enough that every counted pixel saw all it
    depends on), so the output matches the whole-image path as closely as with them."""
    from i2i.data.regions import TensorSource
    from i2i.nets.norm_stats import record_norm_stats

    t = TRANSLATORS[("instance", precision)]
    tile = -(-4 * tiling.receptive_field(t.net) // t.multiple) * t.multiple
    x = torch.rand(3, 700, 530, generator=torch.Generator().manual_seed(5)) * 2 - 1
    plan = tiling.TilePlan(tile, tile // 2, 100 * 100, t.multiple, tiling.min_tile(t), exact_stats=True)
    found = tiling.exact_stats(t, TensorSource(x), plan)
    with record_norm_stats(t.net) as whole_stats:
        whole = t(x[None])[0]
    for name, (mean, var) in whole_stats.items():
        assert torch.allclose(found[name][0], mean, atol=1e-4 if precision == "fp32" else 2e-2), name
        assert torch.allclose(found[name][1], var, rtol=1e-3 if precision == "fp32" else 5e-2), name
    y = tiling.translate_tensor(t, x, plan)
    assert psnr(y, whole) >= (70 if precision == "fp32" else 35)
    estimated = tiling.translate_tensor(t, x, tiling.TilePlan(tile, tile // 2, 100 * 100, t.multiple, tiling.min_tile(t)))
    assert psnr(estimated, whole) < psnr(y, whole)  # the thumbnail's statistics are an estimate


def test_memory_estimate_grows_with_the_network():
    small = tiling.bytes_per_pixel(TRANSLATORS[("instance", "fp32")])
    half = tiling.bytes_per_pixel(TRANSLATORS[("instance", "bf16")])
    assert small > 4 * 3 * 2  # at least the input and one output, in float32
    assert half < small  # bf16 activations take half the bytes


def test_auto_tiles_only_what_does_not_fit():
    t = TRANSLATORS[("instance", "fp32")]
    bpp = tiling.bytes_per_pixel(t)
    assert tiling.plan_tiles(t, 400, 300, None, 64, max_memory=int(bpp * 400 * 300 * 2)) is None
    plan = tiling.plan_tiles(t, 4000, 3000, None, 64, max_memory=int(bpp * 600 * 600))
    assert plan is not None and tiling.min_tile(t) <= plan.tile <= 600
    assert plan.thumbnail is not None and plan.thumbnail * bpp <= bpp * 600 * 600 + 1


@pytest.mark.parametrize("text,value", [("2G", 2 * 1024**3), ("512M", 512 * 1024**2), ("1.5GiB", int(1.5 * 1024**3)),
                                        ("5000000", 5000000), ("3 gb", 3 * 1024**3)])
def test_memory_sizes_parse(text, value):
    assert tiling.parse_memory(text) == value


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "2X", "", "0.5", "1K", "0.0001K"])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(UsageError, match="--max-memory"):
        tiling.parse_memory(text)


# --- files ----------------------------------------------------------------------------------------------

def test_cli_tiles_files_like_the_whole_path(model_file, tmp_path):
    """A JPEG, an RGBA PNG and a 16-bit grayscale PNG, tiled and whole: same sizes, modes, alpha
    and depth, and (with the whole image's statistics) the same pixels to rounding."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.asarray(random_image(700, 500)).copy()).save(src / "photo.jpg", quality=95)
    random_image(600, 410, "RGBA", seed=1).save(src / "alpha.png")
    deep = (np.random.default_rng(2).integers(0, 65536, (420, 610))).astype(np.uint16)
    Image.fromarray(deep).save(src / "deep.png")
    runner = CliRunner()
    args = ["translate", str(src), "--model", str(model_file), "--precision", "fp32"]
    whole = runner.invoke(app, args + ["--out", str(tmp_path / "whole")])
    tiled = runner.invoke(app, args + ["--out", str(tmp_path / "tiled"), "--tile", "504", "--overlap", "252"])
    assert whole.exit_code == 0 and tiled.exit_code == 0, tiled.output
    for name in ("photo.jpg", "alpha.png", "deep.png"):
        a, b = Image.open(tmp_path / "whole" / name), Image.open(tmp_path / "tiled" / name)
        assert (a.size, a.mode) == (b.size, b.mode), name
        if name != "photo.jpg":  # JPEG: two encoders
            diff = np.abs(np.asarray(a).astype(np.int64) - np.asarray(b).astype(np.int64))
            assert diff.max() <= (2 if a.mode != "I;16" else 512), name
    kept = np.asarray(Image.open(tmp_path / "tiled" / "alpha.png").getchannel("A"))
    assert np.array_equal(kept, np.asarray(Image.open(src / "alpha.png").getchannel("A")))


def test_cli_refusals_are_usage_errors_whose_advice_runs(model_file, tmp_path):
    random_image(300, 200).save(tmp_path / "a.png")
    runner = CliRunner()
    base = ["translate", str(tmp_path / "a.png"), "--model", str(model_file), "--out", str(tmp_path / "o")]
    r = runner.invoke(app, base + ["--tile", "400", "--overlap", "300"])
    assert r.exit_code == 2 and "give --overlap 200 or less" in r.output
    assert runner.invoke(app, base + ["--tile", "400", "--overlap", "200"]).exit_code == 0
    r = runner.invoke(app, base + ["--tile", "16"])
    assert r.exit_code == 2 and "--tile" in r.output
    advised = __import__("re").search(r"give --tile (\d+)", r.output).group(1)
    assert runner.invoke(app, base + ["--tile", advised, "--overwrite"]).exit_code == 0
    for bad in (["--tile", "big"], ["--max-memory", "lots"], ["--overlap", "-1"], ["--tile", "400", "--size", "64"]):
        assert runner.invoke(app, base + bad).exit_code == 2, bad


def _child(args, limit_bytes=None, **kw):
    def cap():
        if limit_bytes:
            import resource

            resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))
    env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.Popen([sys.executable, "-m", "i2i", *args], preexec_fn=cap, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_bigtiff_streamed_in_and_out_under_a_memory_cap(model_file, tmp_path):
    """A 5000x4000 BigTIFF read by regions and written as a tiled TIFF by rows, in a process whose
    data segment is capped (RLIMIT_DATA) where translating it whole fails."""
    import tifffile

    rng = np.random.default_rng(0)
    arr = np.repeat(np.repeat(rng.integers(0, 256, (400, 500, 3), dtype=np.uint8), 10, 0), 10, 1)
    src = tmp_path / "in" / "big.tif"
    src.parent.mkdir()
    tifffile.imwrite(src, arr, bigtiff=True, tile=(256, 256), photometric="rgb")
    cap = 1700 * 1024**2
    args = ["translate", str(src.parent), "--model", str(model_file), "--precision", "fp32"]
    p = _child(args + ["--out", str(tmp_path / "out"), "--max-memory", "100M"], cap)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    with tifffile.TiffFile(tmp_path / "out" / "big.tif") as f:
        page = f.pages[0]
        assert page.is_tiled and page.shape == (4000, 5000, 3)
    p = _child(args + ["--out", str(tmp_path / "whole"), "--max-memory", "64G"], cap)  # the cap binds
    _, err = p.communicate(timeout=600)
    assert p.returncode == 1 and not (tmp_path / "whole" / "big.tif").exists()


def test_killed_mid_way_leaves_no_partial_output_and_a_rerun_finishes(model_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.repeat(np.repeat(np.asarray(random_image(200, 150)), 8, 0), 8, 1)).save(src / "big.png")
    out = tmp_path / "out"
    args = ["translate", str(src), "--model", str(model_file), "--precision", "fp32", "--out", str(out),
            "--tile", "256", "--overlap", "64"]
    p = _child(args, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(out.glob(".*.tmp")):
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "big.png").exists()
    p = _child(args)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-2000:]
    assert Image.open(out / "big.png").size == (1600, 1200)
    assert not list(out.glob(".*.tmp"))


@settings(max_examples=15, deadline=None)
@given(extra_h=st.integers(0, 9), extra_w=st.integers(-123, 9), tile_steps=st.integers(0, 2))
def test_files_just_over_the_tile_translate(model_file, tmp_path_factory, extra_h, extra_w, tile_steps):
    """Sides a few pixels over the smallest tile (they once divided by zero): translated, same size."""
    t = TRANSLATORS[("instance", "fp32")]
    tile = tiling.min_tile(t) + t.multiple * tile_steps
    w, h = tile + extra_w, tile + 1 + extra_h
    folder = tmp_path_factory.mktemp("edge")
    random_image(w, h).save(folder / "a.png")
    r = CliRunner().invoke(app, ["translate", str(folder / "a.png"), "--model", str(model_file), "--precision",
                                 "fp32", "--out", str(folder / "out"), "--tile", str(tile)])
    assert r.exit_code == 0, r.output
    assert Image.open(folder / "out" / "a.png").size == (w, h)


def test_a_damaged_file_is_reported_as_damaged_when_tiled(model_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    random_image(700, 500).save(src / "bad.png")
    data = bytearray((src / "bad.png").read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the image data: the PNG still ends properly
    (src / "bad.png").write_bytes(bytes(data))
    r = CliRunner().invoke(app, ["translate", str(src), "--model", str(model_file), "--out", str(tmp_path / "o"),
                                 "--tile", "256"])
    assert r.exit_code == 1 and "bad.png" in r.output and "may be damaged" in r.output


def test_the_logged_advice_exact_stats_runs_and_beats_the_thumbnail(model_file, tmp_path):
    """Under a budget too small for one statistics pass, the log advises --exact-stats; run with it,
    the output is closer to the whole image's than with the thumbnail's estimate."""
    src = tmp_path / "in"
    src.mkdir()
    img = Image.fromarray(np.repeat(np.repeat(np.asarray(random_image(250, 200, seed=4)), 4, 0), 4, 1))
    img.save(src / "big.png")
    runner = CliRunner()
    base = ["translate", str(src), "--model", str(model_file), "--precision", "fp32", "--tile", "504",
            "--overlap", "252"]
    assert runner.invoke(app, base + ["--out", str(tmp_path / "whole"), "--max-memory", "8G", "--tile", "auto"]).exit_code == 0
    r = runner.invoke(app, base + ["--out", str(tmp_path / "thumb"), "--max-memory", "1M"])
    assert r.exit_code == 0 and "--exact-stats" in r.output
    assert runner.invoke(app, base + ["--out", str(tmp_path / "exact"), "--max-memory", "1M", "--exact-stats"]).exit_code == 0
    whole, thumb, exact = (np.asarray(Image.open(tmp_path / d / "big.png")).astype(float) for d in ("whole", "thumb", "exact"))
    assert np.abs(exact - whole).mean() < np.abs(thumb - whole).mean()
    assert np.abs(exact - whole).max() <= 2


def test_python_api_tiles_like_the_cli(model_file):
    from i2i import load

    arr = np.asarray(random_image(620, 410, seed=3))
    whole = load(model_file, precision="fp32", device="cpu")(arr)
    tiled = load(model_file, precision="fp32", device="cpu", tile=504, overlap=252)(arr)
    assert tiled.shape == whole.shape == arr.shape
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 2
    with pytest.raises(UsageError, match="--tile"):
        load(model_file, device="cpu", tile=8)
