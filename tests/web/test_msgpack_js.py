"""The browser's msgpack encoder (web/static/msgpack.js) writes exactly the bytes the
node signs and checks (`node.crdt.encoding.pack`): checked under Node.js on drawn
values, and on a real vote record."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from node.crdt.encoding import pack
from node.crdt.record import DOMAIN, signing_bytes
from node.governance.member_sign import sign_member_record
from node.identity import generate

ENCODER = Path(__file__).parents[2] / "web" / "static" / "msgpack.js"
NODE = shutil.which("node")  # required: the README's test command needs Node.js anyway


# Reads tagged JSON lines (bytes and big ints tagged), prints the hex encodings.
RUNNER = """
const mp = require(process.argv[1]);
const untag = (v) => {
  if (Array.isArray(v)) return v.map(untag);
  if (v && typeof v === "object") {
    if ("$b" in v) return Uint8Array.from(Buffer.from(v.$b, "hex"));
    if ("$i" in v) return BigInt(v.$i);
    const o = {}; for (const k of Object.keys(v)) o[k] = untag(v[k]); return o;
  }
  return v;
};
const values = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(values.map((v) => Buffer.from(mp.encode(untag(v))).toString("hex"))));
"""


def _tag(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"$b": v.hex()}
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v if abs(v) < 2**53 else {"$i": str(v)}
    if isinstance(v, list):
        return [_tag(x) for x in v]
    return {k: _tag(x) for k, x in v.items()}


def js_encode(values: list[Any]) -> list[bytes]:
    out = subprocess.run(
        [NODE or "node", "-e", RUNNER, str(ENCODER)],
        input=json.dumps([_tag(v) for v in values]),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [bytes.fromhex(h) for h in json.loads(out.stdout)]


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from(
        [
            0,
            127,
            128,
            255,
            256,
            65535,
            65536,
            2**32 - 1,
            2**32,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            -(2**31),
            -(2**31) - 1,
        ]
    )
    | st.text(max_size=300)
    | st.binary(max_size=300)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=20) | st.dictionaries(st.text(max_size=8), inner, max_size=20)
    ),
    max_leaves=40,
)


@settings(max_examples=25, deadline=None)
@given(batch=st.lists(values, min_size=1, max_size=20))
def test_js_encoder_writes_the_canonical_bytes(batch):
    assert js_encode(batch) == [pack(v) for v in batch]


def test_js_encoder_reproduces_a_signed_vote():
    who = generate()
    r = sign_member_record(
        who,
        "vote",
        "a811d33aa109e6d5.park",
        "eu/de/berlin/a",
        {"ballot": [["pond", "trees"], ["x"]]},
        now_ms=1_765_000_000_123,
        held_max_seq=0,
    )
    fields = [2, r.origin, r.kind, r.key, r.seq, r.hlc, r.scope, r.body]
    unsigned, raw = js_encode([fields, [*fields, r.sig]])
    assert DOMAIN + unsigned == signing_bytes(r.raw)
    assert raw == r.raw


def test_js_encoder_refuses_floats_and_sorts_keys_by_utf8():
    # "é" (U+00E9) sorts after "z" by UTF-8 bytes, like the node's canonical form.
    [enc] = js_encode([{"é": 1, "z": 2, "a": 3}])
    assert enc == pack({"é": 1, "z": 2, "a": 3})
    out = subprocess.run(
        [NODE or "node", "-e", f"require({json.dumps(str(ENCODER))}).encode(1.5)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "no floats" in out.stderr
