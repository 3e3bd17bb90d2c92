"""A control request line costs at most 20 bytes of memory per input byte (issue 9):
64 KiB of small JSON containers passed the nesting check and json.loads built 25-45
bytes of objects per input byte; lines with more than `MAX_CONTAINERS` arrays and
objects are now refused before they are parsed."""

import sys
import tracemalloc
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import fuzz_edge

from node import control


def _line(unit: bytes) -> bytes:
    head, tail = b'{"op":"status","args":{"a":[', b"1]}}"
    return head + unit * ((control.MAX_REQUEST - len(head) - len(tail)) // len(unit)) + tail + b"\n"


@pytest.mark.parametrize(
    "unit", [b"{},", b"[],", b"[" * 28 + b"1" + b"]" * 28 + b","], ids=["maps", "lists", "deep"]
)
def test_a_request_line_of_many_small_containers_costs_at_most_20_bytes_per_byte(unit):
    data = _line(unit)
    with fuzz_edge.ControlServer() as server:
        server.request(b'{"op": "status"}\n')  # warm up: imports, first-use caches
        tracemalloc.start()
        try:
            server.request(data)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak <= 20 * len(data), f"{peak / len(data):.1f} bytes per input byte"
