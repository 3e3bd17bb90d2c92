"""A click group that imports the modules of its subcommands when they are named.

The command line's modules (their renderers, rich) are megabytes of memory; the daemon
is a command of the same group (`allmende run`) and would hold them all for its whole
life if the group imported every module up front. Click's documented pattern
(https://click.palletsprojects.com/en/stable/complex/#lazily-loading-subcommands).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    """A group whose commands of other modules are imported when first asked for.

    `lazy` maps a command's name to ``"module:attribute"``. `list_commands` names them
    without importing anything; `get_command` imports the module of the one asked for.
    `--help` and shell completion of a command name ask for the commands they list (for
    their short help), so they import those.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, name: str) -> click.Command:
        """Import the command `name` of the `lazy` table.

        Raises:
            TypeError: the table names something that is not a command of that name
                (a mistake in the table, caught by tests/cli/test_cli_lazy.py).
        """
        module, _, attribute = self.lazy[name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command) or command.name != name:
            raise TypeError(f"{self.lazy[name]} is not the command {name!r}")
        return command


__all__ = ["LazyGroup"]
