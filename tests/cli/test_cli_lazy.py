"""The command line imports a command's module only when that command is named:
`allmende run` (the daemon) holds no renderer, no rich and no other command module.

The import checks run in a fresh interpreter: pytest's own process has imported every
CLI module already (the other tests).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from cli_helpers import allmende_command

from cli.lazy import LazyGroup
from cli.main import LAZY_COMMANDS, cli

REPO = Path(__file__).resolve().parents[2]


def run_fresh(code: str) -> dict:
    """Run `code` in a new interpreter with this worktree first; return its JSON print."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_run_imports_no_renderer_no_rich_and_no_other_command_module(tmp_path: Path) -> None:
    # `allmende run` as the console script runs it, up to the daemon, which imports
    # what it serves (the web app's pages) and is stubbed here.
    got = run_fresh(
        f"""
        import json, sys
        import node.daemon

        def run_daemon(data_dir, **kwargs):
            import web, web.pages
            print(json.dumps(sorted(
                m for m in sys.modules if m.split(".")[0] in ("cli", "rich")
            )))

        node.daemon.run_daemon = run_daemon
        from cli.main import cli
        cli(["--data-dir", {str(tmp_path / "node")!r}, "run", "--no-mdns"],
            prog_name="allmende", standalone_mode=False)
        """
    )
    assert got == ["cli", "cli.basis", "cli.lazy", "cli.main"]


def test_a_command_imports_its_module_and_no_other() -> None:
    got = run_fresh(
        """
        import json, sys
        from click.testing import CliRunner
        from cli.main import cli
        r = CliRunner().invoke(cli, ["vote", "--help"])
        print(json.dumps({"code": r.exit_code,
                          "cli": sorted(m for m in sys.modules if m.startswith("cli."))}))
        """
    )
    assert got == {
        "code": 0,
        "cli": ["cli.governance_cmd", "cli.lazy", "cli.main"],
    }


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_each_lazy_entry_is_the_command_of_its_name(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert command is not None
    assert command.name == name
    module, _, attribute = LAZY_COMMANDS[name].partition(":")
    assert getattr(sys.modules[module], attribute) is command


def test_a_wrong_entry_fails_when_named() -> None:
    group = LazyGroup(lazy={"vote": "cli.governance_cmd:results"})
    with pytest.raises(TypeError, match="not the command 'vote'"):
        group.get_command(click.Context(group), "vote")


def test_help_lists_every_command_with_its_short_help() -> None:
    out = subprocess.run(
        [*allmende_command(), "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    listed = dict(
        re.findall(r"^  (\S+)\s+(.+)$", out.split("Commands:\n", 1)[1], flags=re.MULTILINE)
    )
    ctx = click.Context(cli)
    names = cli.list_commands(ctx)
    assert set(LAZY_COMMANDS) < set(names)
    assert sorted(listed) == names
    for name in names:
        command = cli.get_command(ctx, name)
        assert command is not None
        short = command.get_short_help_str(limit=45).rstrip(".")
        assert listed[name].startswith(short[:30]), name
