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


def test_readme_python_example_is_valid_and_uses_public_names():
    import re

    import i2i

    block = re.search(r"## Python\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    compile(block, "README.md", "exec")
    assert "from i2i import load" in block and "load" in i2i.__all__


def test_readme_documents_every_command():
    """Each command of the CLI appears in the README as `i2i <command>` (a lost section shows here)."""
    import re

    from i2i.cli import app

    readme = (ROOT / "README.md").read_text()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    missing = [n for n in names if not re.search(rf"\bi2i {re.escape(n)}\b", readme)]
    assert not missing, f"README never shows: {missing}"
