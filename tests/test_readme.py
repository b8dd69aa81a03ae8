"""Every ``python train.py`` line of the README, in the README's order, is a config that parses and passes every
check made before compiling (what a mistyped or outdated example would fail on); the runs a line needs from an
earlier line (``--resume``, ``--init-from``) find what that line's run leaves behind."""

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

import train
from checkpoint import save_checkpoint

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands() -> list[list[str]]:
    """The arguments of each ``python train.py`` command in the README's shell blocks, in order."""
    commands, in_block = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```bash"
            continue
        if in_block and "python train.py" in line:
            words = shlex.split(line.split("python train.py", 1)[1], comments=True)
            ends = [words.index(w) for w in ("&&", "&") if w in words]  # a command chained or sent to the background
            commands.append(words[: min(ends)] if ends else words)
    return commands


def test_the_readme_lists_its_commands():
    """The parser finds the main command (the defaults) and the examples (the test below can fail)."""
    commands = readme_commands()
    assert [] in commands and len(commands) >= 15


def test_every_readme_command_passes_its_checks(tmp_path, monkeypatch):
    """Each line parses, its config passes ``train.validate``; then it leaves what a run leaves at its start
    (config.json) and at its first checkpoint (the header), so a later ``--resume`` or ``--init-from`` line
    finds its run as a user who ran the lines in order would."""
    monkeypatch.chdir(tmp_path)
    for words in readme_commands():
        try:
            cfg = train.parse(words)
            train.validate(cfg)
        except (ValueError, FileNotFoundError, SystemExit) as e:
            pytest.fail(f"README: python train.py {shlex.join(words)}: {e}")
        run = Path(cfg.run.run_dir or "runs/default")
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)) + "\n")
        save_checkpoint(run / "checkpoint.eqx", cfg, 0, ())
