"""Scenario descriptions: workload, network, gossip, sync and faults; presets and TOML.

A scenario is plain data (frozen dataclasses); both modes read it. Presets:

* ``smoke``     30 nodes, 3 regions, 600 records, mild loss and duplication.
* ``partition`` 60 nodes; the network splits in two at 20 s and heals at 60 s.
* ``churn``     60 nodes; a fifth of them leave for 30 s each, then catch up.
* ``scale``     1,000 nodes, 40 regions, 50,000 records.
* ``federation`` 2,000 nodes, 4 countries, 80 regions, 20,000 records, rollups on: every
                node's federation balance must equal the truth from all records.
* ``sybil``     1,000 honest nodes in 40 regions, 20,000 records, and 4,000 strangers
                nobody admitted posting, applying, inviting and voting.
* ``country``   18,000 nodes (60 % communes, 40 % cooperatives) in 16 states and 400
                regions of 45, 50 records per node (900,000), rollups on, nodes coming
                up over the first minute; scales with ``--nodes`` (regions of 45, 50
                records per node): every node's balances must equal the truth.

TOML scenario file (every key optional; values shown are the defaults)::

    name = "custom"
    seed = 1
    nodes = 200                 # number of nodes
    duration = 600.0            # hard stop, virtual seconds (the run ends earlier
                                # once everything converged and no event is left)

    [workload]
    federation = "eu"           # root scope; scopes are eu/f0/r3/c17 (see below)
    countries = 1               # countries between the root and the regions (f0, f1, ...)
    regions = 8                 # regions; a region is one replication partition
    cooperatives = 0.3          # fraction of nodes that are cooperatives
    records = 5000              # needs and capacities to write in all
    write_window = 60.0         # writes happen in [0, write_window] virtual seconds
    burst = 10                  # records a node posts at once (one gossip batch)
    zipf = 1.1                  # item popularity skew (s of a Zipf law over the catalog)
    periods = ["2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4"]
    updates = 0.1               # fraction of writes that re-post an own record
    withdrawals = 0.02          # fraction of writes that withdraw an own record
    region_size = 0             # if set: regions = nodes // region_size (at least 1),
                                # and countries at most regions (scales with --nodes)
    records_per_node = 0        # if set: records = records_per_node x nodes

    [network]
    latency_ms = 40.0           # mean one-way link latency (lognormal per link)
    latency_sigma = 0.5         # lognormal sigma of the per-link mean
    jitter_sigma = 0.2          # lognormal sigma of per-message jitter
    bandwidth_mbps = 100.0      # per-message serialisation delay = bytes / bandwidth
    loss = 0.0                  # probability a gossip RPC is lost
    duplicate = 0.0             # probability a gossip RPC arrives twice
    peers = 8                   # connections each node dials
    cross_region = 0.2          # fraction of dialled peers outside the own region
    start_window = 0.0          # nodes come up at uniform times in [0, start_window]
                                # seconds (0: all at once, the t = 0 sync storm)

    [gossip]
    d = 6                       # mesh degree D
    d_lo = 4
    d_hi = 12
    d_lazy = 6                  # peers that get IHAVE per topic per heartbeat
    heartbeat = 1.0             # seconds
    history_length = 5          # heartbeats a message stays in the message cache
    history_gossip = 3          # heartbeats of ids advertised in IHAVE

    [sync]
    interval = 15.0             # anti-entropy with a random connected peer, seconds
    on_connect = true           # both sides sync when a link (re)connects, as the daemon

    [[partition]]               # any number of these
    at = 20.0                   # split at this virtual time ...
    heal = 60.0                 # ... and heal here
    groups = 2                  # into this many groups of nodes (random, seeded)

    [churn]
    fraction = 0.0              # fraction of nodes that leave once
    start = 10.0                # leaves are spread over [start, end]
    end = 50.0
    downtime = 30.0             # seconds each leaver stays away

    [sybil]
    nodes = 0                   # strangers nobody admitted (on top of `nodes`)
    records = 10                # needs and capacities each posts
    members = 3                 # members each invents, who vote
    invites = 2                 # invites each publishes

    [run]
    rollups = false             # regional rollups: attested, and checked on every node
    rollup_every = 10.0         # seconds between an attester's recomputations
    rollup_max_wait = 300.0     # an attester publishes a change once two recomputations
                                # in a row agree, or after this many seconds (as the
                                # daemon, `node.planning.pace`); 0: at every one
    watch_hold = 600.0          # a watcher (an admitted node that is none of its
                                # region's attesters: its roots and five others) signs
                                # what readers would not accept without it once it
                                # found it wanting this long (`node.planning.pace`)
    trust_signatures = "auto"   # "on", "off" or "auto" (on from 100 nodes)
    balance_index = "all"       # "all": every node keeps a BalanceIndex, as the daemon;
                                # "sample": only 3 nodes per region do (the others keep
                                # the Replica alone; digests are still checked on all)

Scopes: ``<federation>/f<country>/r<k>/c<n>`` (region k in country k mod countries).
The model replicates records by their scope cut
to three levels (`node.model.REGION_DEPTH`), so the region ``eu/f0/r3`` is one gossip
topic and one anti-entropy partition; a node follows its region and the levels above.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from node.errors import LocalError
from node.planning.pace import MAX_WAIT, WATCH_HOLD


@dataclass(frozen=True)
class Workload:
    federation: str = "eu"
    countries: int = 1
    regions: int = 8
    cooperatives: float = 0.3
    records: int = 5000
    write_window: float = 60.0
    burst: int = 10
    zipf: float = 1.1
    periods: tuple[str, ...] = ("2027-Q1", "2027-Q2", "2027-Q3", "2027-Q4")
    updates: float = 0.1
    withdrawals: float = 0.02
    # A workload that scales with the node count (`Scenario.scaled`); 0: fixed.
    region_size: int = 0
    records_per_node: int = 0


@dataclass(frozen=True)
class Network:
    latency_ms: float = 40.0
    latency_sigma: float = 0.5
    jitter_sigma: float = 0.2
    bandwidth_mbps: float = 100.0
    loss: float = 0.0
    duplicate: float = 0.0
    peers: int = 8
    cross_region: float = 0.2
    start_window: float = 0.0


@dataclass(frozen=True)
class Gossip:
    d: int = 6
    d_lo: int = 4
    d_hi: int = 12
    d_lazy: int = 6
    heartbeat: float = 1.0
    history_length: int = 5
    history_gossip: int = 3


@dataclass(frozen=True)
class Sync:
    interval: float = 15.0
    on_connect: bool = True


@dataclass(frozen=True)
class Partition:
    at: float
    heal: float
    groups: int = 2


@dataclass(frozen=True)
class Churn:
    fraction: float = 0.0
    start: float = 10.0
    end: float = 50.0
    downtime: float = 30.0


@dataclass(frozen=True)
class Sybil:
    """Strangers the federation never admitted, trying anyway (the sybil preset).

    Each writes its node record, an application with a made-up invite, `invites`
    invites of its own, `records` needs and capacities, and `members` invented members
    who vote; it keeps and relays nothing it receives (a black hole in every mesh it
    gets into).
    """

    nodes: int = 0
    records: int = 10
    members: int = 3
    invites: int = 2


@dataclass(frozen=True)
class Run:
    trust_signatures: str = "auto"
    balance_index: str = "all"
    # Regional rollups (issue 11): every region's attesters publish, every node checks
    # its federation balance against the truth at the end. Off by default (traffic).
    rollups: bool = False
    rollup_every: float = 10.0
    # An attester publishes a change once two recomputations agree, or after this
    # many seconds (`node.planning.pace`, as the daemon); 0: at every recomputation.
    rollup_max_wait: float = MAX_WAIT
    # A region's other admitted nodes watch: they sign a content readers would not
    # accept without them once they found it wanting this long (`watching`,
    # `RollupPace.step`).
    watch_hold: float = WATCH_HOLD


@dataclass(frozen=True)
class Scenario:
    name: str = "custom"
    seed: int = 1
    nodes: int = 200
    duration: float = 600.0
    workload: Workload = field(default_factory=Workload)
    network: Network = field(default_factory=Network)
    gossip: Gossip = field(default_factory=Gossip)
    sync: Sync = field(default_factory=Sync)
    partition: tuple[Partition, ...] = ()
    churn: Churn = field(default_factory=Churn)
    sybil: Sybil = field(default_factory=Sybil)
    run: Run = field(default_factory=Run)

    def trust(self) -> bool:
        """Whether the shared verified-record cache is on (see `simnet.trust`)."""
        mode = self.run.trust_signatures
        return mode == "on" or (mode == "auto" and self.nodes >= 100)

    def with_overrides(
        self,
        *,
        nodes: int | None = None,
        seed: int | None = None,
        trust: str | None = None,
        balance: str | None = None,
    ) -> Scenario:
        s = self
        if nodes is not None:
            # keep regions at most a quarter of the nodes so each has a mesh
            regions = max(1, min(s.workload.regions, nodes // 4))
            sybils = s.sybil.nodes * nodes // s.nodes  # the same share of strangers
            s = replace(
                s,
                nodes=nodes,
                workload=replace(s.workload, regions=regions),
                sybil=replace(s.sybil, nodes=sybils),
            )
        if seed is not None:
            s = replace(s, seed=seed)
        s = s.scaled()
        if trust is not None:
            s = replace(s, run=replace(s.run, trust_signatures=trust))
        if balance is not None:
            s = replace(s, run=replace(s.run, balance_index=balance))
        return s.check()

    def scaled(self) -> Scenario:
        """Regions and records derived from the node count where the workload asks
        for it (`Workload.region_size`, `Workload.records_per_node`)."""
        w = self.workload
        if w.region_size > 0:
            regions = max(1, self.nodes // w.region_size)
            w = replace(w, regions=regions, countries=min(w.countries, regions))
        if w.records_per_node > 0:
            w = replace(w, records=w.records_per_node * self.nodes)
        return replace(self, workload=w)

    def check(self) -> Scenario:
        """Validate; raises LocalError naming the key to fix."""
        w, g = self.workload, self.gossip
        problems = []
        if self.nodes < 2:
            problems.append("nodes must be at least 2")
        if not 1 <= w.regions <= self.nodes:
            problems.append("workload.regions must be between 1 and nodes")
        if not 1 <= w.countries <= w.regions:
            problems.append("workload.countries must be between 1 and regions")
        if self.run.rollup_every <= 0:
            problems.append("run.rollup_every must be positive")
        if self.run.rollup_max_wait < 0:
            problems.append("run.rollup_max_wait must not be negative")
        if self.run.watch_hold < 0:
            problems.append("run.watch_hold must not be negative")
        if w.region_size < 0 or w.records_per_node < 0:
            problems.append("workload.region_size and workload.records_per_node >= 0")
        if w.records < 0 or w.burst < 1:
            problems.append("workload.records >= 0 and workload.burst >= 1")
        if not 0 <= w.updates + w.withdrawals < 1:
            problems.append("workload.updates + workload.withdrawals must be below 1")
        if not 0 < g.d_lo <= g.d <= g.d_hi:
            problems.append("gossip: 0 < d_lo <= d <= d_hi")
        if not 0 <= self.network.loss < 1 or not 0 <= self.network.duplicate < 1:
            problems.append("network.loss and network.duplicate are probabilities")
        if not 0 <= self.network.start_window <= self.duration:
            problems.append("network.start_window must be from 0 to the duration")
        if self.run.trust_signatures not in ("on", "off", "auto"):
            problems.append('run.trust_signatures is "on", "off" or "auto"')
        if self.run.balance_index not in ("all", "sample"):
            problems.append('run.balance_index is "all" or "sample"')
        for p in self.partition:
            if not 0 <= p.at < p.heal or p.groups < 2:
                problems.append("partition: 0 <= at < heal and groups >= 2")
        y = self.sybil
        if min(y.nodes, y.records, y.members, y.invites) < 0:
            problems.append("sybil: counts must not be negative")
        if problems:
            raise LocalError("scenario: " + "; ".join(problems))
        return self


def preset(name: str) -> Scenario:
    """A named scenario (one of `PRESETS`).

    Raises:
        LocalError: unknown name.
    """
    lossy = Network(loss=0.01, duplicate=0.01)
    presets = {
        "smoke": Scenario(
            name="smoke",
            nodes=30,
            duration=300.0,
            network=lossy,
            workload=Workload(regions=3, records=600, write_window=20.0),
        ),
        "partition": Scenario(
            name="partition",
            nodes=60,
            duration=400.0,
            network=lossy,
            workload=Workload(regions=4, records=1200, write_window=80.0),
            partition=(Partition(at=20.0, heal=60.0),),
        ),
        "churn": Scenario(
            name="churn",
            nodes=60,
            duration=400.0,
            network=lossy,
            workload=Workload(regions=4, records=1200, write_window=60.0),
            churn=Churn(fraction=0.2, start=5.0, end=40.0, downtime=30.0),
        ),
        "scale": Scenario(
            name="scale",
            nodes=1000,
            duration=900.0,
            workload=Workload(regions=40, records=50_000, write_window=120.0),
        ),
        # The federation seen from everywhere: countries, regions, attested rollups.
        "federation": Scenario(
            name="federation",
            nodes=2000,
            duration=900.0,
            workload=Workload(countries=4, regions=80, records=20_000, write_window=120.0),
            run=Run(rollups=True, balance_index="all"),
        ),
        # The ratio of the gossipsub v1.1 evaluation: four strangers per honest node.
        "sybil": Scenario(
            name="sybil",
            nodes=1000,
            duration=900.0,
            workload=Workload(regions=40, records=20_000, write_window=120.0),
            sybil=Sybil(nodes=4000),
        ),
        # The country on one box: Germany's ~10,800 municipalities and ~7,500
        # cooperatives in 16 states and 400 regions, every node posting 50 records.
        "country": Scenario(
            name="country",
            nodes=18_000,
            duration=1200.0,
            network=Network(start_window=60.0),
            workload=Workload(
                federation="de",
                countries=16,
                regions=400,
                cooperatives=0.4,
                records=900_000,
                write_window=120.0,
                region_size=45,
                records_per_node=50,
            ),
            run=Run(rollups=True, balance_index="all"),
        ),
    }
    if name not in presets:
        raise LocalError(f"unknown preset {name!r}; choose one of {', '.join(presets)}")
    return presets[name]


PRESETS = ("smoke", "partition", "churn", "scale", "federation", "sybil", "country")


def load_toml(path: Path) -> Scenario:
    """Read a scenario file (keys in the module docstring).

    Raises:
        LocalError: unreadable file, unknown key or bad value.
    """
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LocalError(f"{path}: {exc}") from None
    try:
        return from_dict(data).check()
    except (TypeError, ValueError) as exc:
        raise LocalError(f"{path}: {exc}") from None


_SECTIONS: dict[str, type] = {
    "workload": Workload,
    "network": Network,
    "gossip": Gossip,
    "sync": Sync,
    "churn": Churn,
    "sybil": Sybil,
    "run": Run,
}


def from_dict(data: dict[str, Any]) -> Scenario:
    """Build a scenario from a TOML-shaped dict; unknown keys are errors."""
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS:
            kwargs[key] = _build(_SECTIONS[key], value, key)
        elif key == "partition":
            kwargs[key] = tuple(_build(Partition, p, "partition") for p in value)
        elif key in ("name", "seed", "nodes", "duration"):
            kwargs[key] = value
        else:
            raise ValueError(f"unknown key {key!r}")
    return Scenario(**kwargs)


def _build(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"[{where}] must be a table")
    known = {f.name for f in fields(cls)}
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


def as_dict(obj: Any) -> Any:
    """A scenario as JSON-ready data (for reports)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [as_dict(x) for x in obj]
    return obj
