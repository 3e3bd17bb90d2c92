"""Real simnet: daemons with real libp2p on loopback, in two shard processes."""

from dataclasses import replace

import pytest

from simnet.real import run_real
from simnet.scenario import Workload, preset


@pytest.mark.slow
def test_real_daemons_converge():
    s = preset("smoke").with_overrides(nodes=5)
    s = replace(s, duration=90.0, workload=Workload(regions=1, records=60, write_window=4.0))
    report = run_real(s, shards=2)
    r = report["result"]
    assert r["ok"], r
    assert r["records_unconverged"] == 0
    assert r["check"]["digest_mismatch_count"] == 0
    assert r["check"]["balance_mismatch_count"] == 0
    assert report["machine"]["shards"] == 2
