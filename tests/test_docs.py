"""The README as a newcomer meets it: the install, test and demo commands near the top, short, run verbatim by CI,
and every `shapezoo` command it shows is one the CLI has."""

import re
from pathlib import Path

import typer
from typer.testing import CliRunner

from shapezoo_cli.main import app

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_the_readme_starts_with_install_test_and_demo_and_stays_short():
    top = "\n".join(README.splitlines()[:40])
    for command in ("bash install.sh", "python3 -m pytest -q", "shapezoo demo --out runs/demo"):
        assert command in top, command
    assert len(README.splitlines()) < 250


def test_ci_runs_the_readmes_install_and_test_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "bash install.sh" in ci and "python3 -m pytest -q" in ci


def test_every_command_the_readme_shows_exists():
    """Each `shapezoo ...` line of the README's shell blocks names a command (or group and command) whose --help
    works; a renamed or removed command fails here."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [line.split("#")[0].split() for block in blocks for line in block.splitlines()]
    commands = {
        tuple(w for w in words[1:3] if re.fullmatch(r"[a-z][a-z-]*", w)) for words in lines if words[:1] == ["shapezoo"]
    }
    assert len(commands) > 20
    runner = CliRunner()
    for words in sorted(commands):
        for depth in (2, 1):  # "classifiers space train" is a group path; "encode my.obj" a command and its argument
            res = runner.invoke(app, [*words[:depth], "--help"])
            if res.exit_code == 0:
                break
        assert res.exit_code == 0, (words, res.output)


def _commands(command, path=()):
    """Every (path, click command) under a click command or group."""
    if not hasattr(command, "commands"):
        yield path, command
        return
    for name, sub in command.commands.items():
        yield from _commands(sub, (*path, name))


def test_every_help_text_reaches_the_screen_whole():
    """The CLI renders help with rich markup, where a bracketed word ("[default: ...]") is a tag and vanishes from
    the screen: no option's help may hold one, and `fit --help` shows its resolved-default text."""
    tag = re.compile(r"(?<!\\)\[[A-Za-z/#@]")
    helps = [(path, p.name, p.help or "") for path, c in _commands(typer.main.get_command(app)) for p in c.params]
    assert len(helps) > 100
    assert [(path, name) for path, name, text in helps if tag.search(text)] == []
    res = CliRunner().invoke(app, ["fit", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "500 from a learned init or base, else 4800" in res.output, res.output
