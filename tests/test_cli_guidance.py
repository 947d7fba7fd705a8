"""CLI guidance for training: every help text reaches the screen whole, and the advice that training
messages give is a command that works (each test runs it)."""

from __future__ import annotations

import re
import shlex

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import typer.rich_utils
from typer.testing import CliRunner

from i2i.cli import app

from conftest import ab_folder, random_image

runner = CliRunner()
TINY = ["--net-g", "unet_32", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32", "--workers", "0",
        "--seed", "0", "--max-steps", "1", "--no-report", "--precision", "fp32", "--threads", "1"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def says(output: str, fragment: str) -> bool:
    """Whether ``output`` holds ``fragment``, however the terminal wrapped it (log lines wrap mid-word)."""
    return "".join(fragment.split()) in "".join(output.replace("│", "").split())


def one_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return flat(result.output[result.output.index("error:"):])


# --- help texts ------------------------------------------------------------------------------------------

def commands():
    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


COMMANDS = commands()


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) or "i2i" for p, _ in COMMANDS])
def test_every_help_text_is_shown_whole(monkeypatch, path, command):
    """Each option's and argument's help, and the command's own, appear character for character in
    the rendered --help (Typer's markdown mode drops <placeholders> and other markup)."""
    texts = [p.help for p in command.params if getattr(p, "help", None)] + ([command.help] if command.help else [])
    assert texts
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 4000)  # one line per option: compare whole strings
    wide = flat(invoke(*path, "--help").output)
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 80)  # a usual terminal: every word survives the wrapping
    narrow = flat(invoke(*path, "--help").output).split()
    for param in command.params:  # a help text that states its default is not followed by Typer's own
        if getattr(param, "help", None) and "[default:" in param.help:
            assert not (param.show_default and param.default is not None), param.name
    for text in texts:
        assert " ".join(text.split()) in wide, text
        missing = [word for word in text.split() if not any(word in token for token in narrow)
                   and word not in " ".join(narrow)]
        assert not missing, (text, missing)


def test_placeholders_are_capitals_that_survive():
    shown = {" ".join(p): flat(invoke(*p, "--help").output) for p in (["train"], ["translate"], ["report"])}
    assert "kept in RUN/best" in shown["train"] and "[default: DATA_MODE," in shown["train"]
    assert "[default: a new folder INPUT_RUN beside the input" in shown["translate"]
    assert "Write RUN/report.html" in shown["report"]
    for text in shown.values():
        assert "[default: _ " not in text and " /best" not in text and " /report.html" not in text


# --- two folders without --mode --------------------------------------------------------------------------

def folders_of_jpegs(root, n=3):
    for name, seed in (("horses", 0), ("zebras", 10)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            random_image(40, 32, seed=seed + i).save(root / name / f"{name[0]}{i:03d}.jpg")
    return root / "horses", root / "zebras"


def advised_modes(message: str) -> list[str]:
    return re.findall(r"--mode (\w+)", message)


def test_two_unmatched_folders_say_unpaired_mode_and_the_advice_trains(tmp_path):
    horses, zebras = folders_of_jpegs(tmp_path)
    ck = tmp_path / "ck"
    message = one_error(invoke("train", "--a", horses, "--b", zebras, "--checkpoints-dir", ck, *TINY), 2)
    assert "no file names match" in message and "no images found" not in message
    assert "add --mode cycle (CycleGAN) or --mode dual" in message
    assert not ck.exists()
    assert advised_modes(message) == ["cycle", "dual"]
    for mode in advised_modes(message):
        result = invoke("train", "--a", horses, "--b", zebras, "--mode", mode, "--checkpoints-dir", ck, *TINY)
        assert result.exit_code == 0, result.output
        assert (ck / f"horses_{mode}" / "G_A.safetensors").is_file()


def test_unmatched_a_and_b_subfolders_advise_the_full_command(tmp_path):
    root = tmp_path / "data"
    horses, zebras = folders_of_jpegs(root)
    horses.rename(root / "A")
    zebras.rename(root / "B")
    ck = tmp_path / "ck"
    message = one_error(invoke("train", "--a", root, "--checkpoints-dir", ck, *TINY), 2)
    flags = message[message.index("with --a"):].split()[1:5]
    assert flags == ["--a", str(root / "A"), "--b", str(root / "B")]
    result = invoke("train", *flags, "--mode", "cycle", "--checkpoints-dir", ck, *TINY)
    assert result.exit_code == 0, result.output


# --- A|B folders ----------------------------------------------------------------------------------------

def test_ordinary_photos_warn_and_the_advised_layout_trains_without_the_warning(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        random_image(48, 36, seed=i).save(photos / f"p{i}.jpg")  # 4:3 photos, not A|B pairs
    ck = tmp_path / "ck"
    result = invoke("train", "--a", photos, "--checkpoints-dir", ck, *TINY)
    assert result.exit_code == 0, result.output
    assert says(result.output, "3 of 3 images are not about twice as wide as tall")
    assert says(result.output, "--mode cycle --a FOLDER_A --b FOLDER_B")
    assert says(result.output, "i2i prepare combine --a A/ --b B/ --out AB/")
    # the advice: A/ and B/ folders of matching names, combined into A|B images
    pairs = tmp_path / "pairs"
    for side in "AB":
        (pairs / side).mkdir(parents=True)
        for i in range(3):
            random_image(32, 32, seed=i + (side == "B") * 7).save(pairs / side / f"{i}.png")
    combine = "i2i prepare combine --a A/ --b B/ --out AB/".split()[1:]
    combine = [str(pairs / x) if x.endswith("/") else x for x in combine]
    assert invoke(*combine).exit_code == 0
    result = invoke("train", "--a", pairs / "AB", "--name", "ab", "--checkpoints-dir", ck, *TINY)
    assert result.exit_code == 0 and not says(result.output, "twice as wide"), result.output
    result = invoke("train", "--a", pairs, "--name", "folders", "--checkpoints-dir", ck, *TINY)
    assert result.exit_code == 0 and not says(result.output, "twice as wide"), result.output


def test_odd_width_ab_image_is_skipped_in_training_and_strict_refuses(tmp_path):
    data = ab_folder(tmp_path / "ab", [(32, 32)] * 2)
    random_image(65, 32).save(data / "odd.png")
    ck = tmp_path / "ck"
    result = invoke("train", "--a", data, "--checkpoints-dir", ck, *TINY)
    assert result.exit_code == 0, result.output
    assert says(result.output, "odd.png: width 65 is odd")
    assert says(result.output, "skipped 1 A|B image(s) of odd width of 3")
    message = one_error(invoke("train", "--a", data, "--name", "strict", "--strict", "--checkpoints-dir", ck, *TINY), 2)
    assert "odd.png: width 65 is odd" in message and "drop --strict to skip them" in message
    result = invoke("train", "--a", data, "--name", "strict", "--checkpoints-dir", ck, *TINY)  # the advice
    assert result.exit_code == 0, result.output


# --- options that cannot work -----------------------------------------------------------------------------

def test_batch_of_mixed_sizes_is_one_line_and_its_advice_trains(tmp_path):
    data = ab_folder(tmp_path / "ab", [(32, 32), (64, 32), (32, 64)])
    ck = tmp_path / "ck"
    args = ["train", "--a", data, "--checkpoints-dir", ck, *TINY, "--preprocess", "none", "--batch-size", "2"]
    message = one_error(invoke(*args), 2)
    assert "--batch-size 2 stacks images of one size, but --preprocess none leaves 3 sizes" in message
    assert not ck.exists()
    fixes = message.split("; use ", 1)[1].split(" or ")
    assert fixes == ["--batch-size 1", "--preprocess resize_and_crop"]
    for i, fix in enumerate(fixes):
        result = invoke(*args, *shlex.split(fix), "--name", f"fixed{i}")
        assert result.exit_code == 0, result.output


def test_train_help_names_what_preprocess_needs_for_batches():
    text = flat(invoke("train", "--help").output)
    assert "[default: resize_and_crop]" in text and "--batch-size 1" in text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names_a=st.sets(st.sampled_from("abcdef"), max_size=4), names_b=st.sets(st.sampled_from("abcdef"), max_size=4),
       suffix_a=st.sampled_from([".jpg", ".png"]), suffix_b=st.sampled_from([".jpg", ".PNG", ".webp"]),
       nested=st.booleans())
def test_two_folders_pair_by_name_or_are_called_unpaired(tmp_path_factory, names_a, names_b, suffix_a, suffix_b, nested):
    """Any two folders: matching names pair up; no name in common (both holding images) is the
    unpaired-data message, whose flags name the two folders; empty folders say no images."""
    from i2i.data.paired import PairedDataset, match_pairs
    from i2i.errors import UsageError

    root = tmp_path_factory.mktemp("pairs")
    for side, names, suffix in (("A", names_a, suffix_a), ("B", names_b, suffix_b)):
        folder = root / side / ("sub" if nested else "")
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / f"{name}{suffix}").write_bytes(b"")  # matching looks at names only
    if names_a and names_b and not names_a & names_b:
        with pytest.raises(UsageError) as refused:
            match_pairs(root / "A", root / "B")
        message = str(refused.value)
        assert "no file names match" in message and "add --mode cycle (CycleGAN) or --mode dual" in message
        assert message.endswith(f"--a {root / 'A'} --b {root / 'B'}")
    else:
        pairs = match_pairs(root / "A", root / "B")
        assert sorted(a.stem for a, _ in pairs) == sorted(names_a & names_b)
        assert all(a.stem == b.stem for a, b in pairs)
        if not pairs:
            with pytest.raises(UsageError, match="no images found"):
                PairedDataset(root)
