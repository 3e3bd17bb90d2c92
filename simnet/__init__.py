"""Many Allmende nodes on one machine.

* `simnet.virtual` — N nodes in one process on virtual time, running the daemon's core
  (`Replica`, `BalanceIndex`, `SyncSession`) over a modelled gossipsub mesh
  (`simnet.gossip`) and an in-memory network with a routing hook (`simnet.network`).
* `simnet.real` — N `node.daemon.Daemon`s on 127.0.0.1 in a few shard processes.
* `simnet.scenario` — presets and the TOML scenario format; `simnet.workload` — who
  writes what when; `simnet.report` — convergence, traffic and the final check.
"""

from simnet.scenario import PRESETS, Scenario, load_toml, preset

__all__ = ["PRESETS", "Scenario", "load_toml", "preset"]
