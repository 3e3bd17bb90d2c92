"""Every command and subcommand has help text, and `--help` works for each.

The command tree is walked, not listed, so commands added later (to the group's
`LAZY_COMMANDS` table in cli/main.py) are checked too. It is walked through click's
`list_commands` / `get_command`, which import the lazily loaded ones (`.commands`
holds only those imported so far).
"""

from __future__ import annotations

import os
import subprocess

import click
import pytest
from cli_helpers import allmende_command
from click.testing import CliRunner

from cli.main import cli


def walk(
    cmd: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, name
            out.extend(walk(sub, (*path, name)))
    return out


COMMANDS = walk(cli)
IDS = [" ".join(p) or "allmende" for p, _ in COMMANDS]


def test_tree_has_the_documented_commands():
    names = set(IDS)
    for expected in [
        "init",
        "run",
        "status",
        "peers",
        "peers add",
        "item list",
        "item add",
        "need add",
        "need list",
        "need withdraw",
        "capacity add",
        "capacity list",
        "capacity withdraw",
        "balance",
    ]:
        assert expected in names


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_command_has_help(path, cmd):
    assert (cmd.help or "").strip(), f"allmende {' '.join(path)} has no help text"
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts} has no help"


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=IDS)
def test_help_option_works(path, cmd):
    r = CliRunner().invoke(cli, [*path, "--help"], prog_name="allmende")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"Usage: allmende {' '.join(path)}".rstrip())
    assert (cmd.help or "").split()[0] in r.stdout


def test_version():
    r = CliRunner().invoke(cli, ["--version"], prog_name="allmende")
    assert r.exit_code == 0
    assert "version" in r.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script(shell):
    # As in the README: eval "$(_ALLMENDE_COMPLETE=bash_source allmende)"
    out = subprocess.run(
        allmende_command(),
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "_ALLMENDE_COMPLETE": f"{shell}_source"},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "_ALLMENDE_COMPLETE" in out.stdout
    assert "allmende" in out.stdout


def test_bash_completion_completes_subcommands():
    env = {
        **os.environ,
        "_ALLMENDE_COMPLETE": "bash_complete",
        "COMP_WORDS": "allmende ne",
        "COMP_CWORD": "1",
    }
    out = subprocess.run(
        allmende_command(), capture_output=True, text=True, timeout=30, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "plain,need" in out.stdout.splitlines()


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("allmende need add pot", 3, ["potatoes"]),
        ("allmende need add potatoes 5 ", 5, ["g", "kg", "t"]),
        ("allmende capacity add childcare 5 ", 5, ["min", "h", "day"]),
        ("allmende balance --item chi", 3, ["childcare"]),
    ],
)
def test_completion_of_items_and_units(words, cword, expected):
    env = {
        **os.environ,
        "_ALLMENDE_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    out = subprocess.run(
        allmende_command(), capture_output=True, text=True, timeout=30, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert [line.split(",", 1)[1] for line in out.stdout.splitlines()] == expected
