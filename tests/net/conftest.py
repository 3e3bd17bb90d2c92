"""Run ``async def`` tests in this folder under trio (pytest-trio is not a dependency).

Each async test runs in a fresh `trio.run` with a hard deadline of `TEST_DEADLINE` s.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest
import trio

TEST_DEADLINE = 25.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}

    async def with_deadline(**kw: Any) -> None:
        with trio.fail_after(TEST_DEADLINE):
            await fn(**kw)

    trio.run(functools.partial(with_deadline, **kwargs))
    return True
