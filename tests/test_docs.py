"""The README's commands are the ones CI and users run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = 'pip install -e ".[dev]" && python -m pytest'
    assert f"\n{command}\n" in readme
    assert f"\n{command}\n" in ci


def test_readme_demo_command():
    assert "\npip install -e . && i2i demo\n" in (ROOT / "README.md").read_text()
