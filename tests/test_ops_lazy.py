"""The op table loads an op's module only when a request names one of its ops.

The table names every op and its module (`node.ops.MODULES`); these tests hold it to
the modules' own `OPS`, and check in a fresh interpreter that a started daemon, web
app on, has not imported the op modules (and the governance modules behind them)
that no request used, and that naming an op loads it and answers as before.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from node.ops import MODULES, TABLE, OpSpec, OpTable

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", list(MODULES))
def test_the_table_names_exactly_each_modules_ops_in_order(module: str) -> None:
    ops = importlib.import_module(f"node.ops.{module}").OPS
    assert MODULES[module] == tuple(ops)
    for op, spec in ops.items():
        assert TABLE[op] is spec  # the module's own spec: same function, params, payload


def test_the_op_set_is_the_union_of_the_modules_and_unknown_ops_are_absent() -> None:
    names = [op for ops in MODULES.values() for op in ops]
    assert len(names) == len(set(names))  # no op defined twice
    assert list(TABLE) == names
    assert len(TABLE) == len(names)
    assert "status" in TABLE
    for unknown in ("", "nope", "x" * 500, None, 7, "node_ops"):
        assert unknown not in TABLE
        assert TABLE.get(unknown) is None  # type: ignore[arg-type]


def test_an_entry_set_on_the_table_overrides_and_can_be_removed() -> None:
    table = OpTable({"trust_ops": ("federation", "admission", "endorse", "invite_create")})
    probe = OpSpec(lambda ctx, args: None, max_payload=3)
    table["probe"] = probe
    assert table["probe"] is probe
    assert list(table)[-1] == "probe"
    del table["probe"]
    assert "probe" not in table
    assert table.get("probe") is None


FRESH = """
import json, sys
from pathlib import Path
import trio
from node.config import Config, DataDir
from node.daemon import Daemon

dd = DataDir(Path(sys.argv[1]))
dd.init(Config(name="x", scope="eu/de/berlin/x", listen=("/ip4/127.0.0.1/tcp/0",), mdns=False))
identity, config = dd.load()
d = Daemon(dd, identity, config, web=True, web_port=0)
watched = ("node.ops.gov_ops", "node.ops.delib_ops", "node.ops.match_ops",
           "node.ops.trust_ops", "node.governance.sortition", "node.governance.pbimport",
           "node.governance.deliberation", "node.governance.opinions")
out = {}

async def main():
    async with trio.open_nursery() as nursery:
        await nursery.start(d.run)
        out["web"] = d.web_url is not None
        out["started"] = sorted(m for m in watched if m in sys.modules)
        out["status"] = (await d.handle("status", {}, None))["node_id"] == d.state.me.hex()
        out["after_status"] = sorted(m for m in watched if m in sys.modules)
        out["proposals"] = await d.handle("gov_proposal_list", {}, None)
        out["after_gov"] = sorted(m for m in watched if m in sys.modules)
        try:
            await d.handle("gov_proposal_list", {"bogus": 1}, None)
        except Exception as exc:
            out["refused"] = str(exc)
        nursery.cancel_scope.cancel()
    d.store.close()

trio.run(main)
print(json.dumps(out))
"""


def test_a_started_daemon_loads_only_the_op_modules_its_requests_named(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FRESH), str(tmp_path / "node")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["web"]
    assert out["started"] == []
    assert out["status"]
    assert out["after_status"] == []
    assert out["proposals"] == []
    assert out["after_gov"] == [
        "node.governance.pbimport",
        "node.governance.sortition",
        "node.ops.gov_ops",
    ]
    assert "bogus" in out["refused"]  # checked against the loaded module's params
