"""Thin libp2p driver for Allmende (py-libp2p 0.8.1, trio).

Modules: `deferred` (imported first: py-libp2p's unused transports and services stay
unloaded until used), `host` (identity -> Noise-only TCP/yamux host), `gossip` (gossipsub config,
validators, invalid counters, paced publishing), `pubsub` (py-libp2p's Pubsub with
serialised writes, contained errors and three-valued validation), `syncproto`
(``/allmende/sync/3.0.0``
framing and session drivers), `discovery` (bootstrap, remembered peers, mDNS, redial),
`service` (`NetService` composing them).  The core (`node/crdt`, daemon) is reached
only through `NetHandler` / `SyncSession`.

Parameters chosen, and why
--------------------------
* Security: Noise only (``sec_opt={"/noise": ...}``).  ``new_host`` without `sec_opt`
  also offers ``/plaintext/2.0.0``, secio and TLS (libp2p/__init__.py, new_swarm);
  a test checks that a raw multistream client asking for plaintext gets ``na``.
  Muxer: yamux only.  Identity: the node's 32-byte Ed25519 seed is the libp2p key.
* Heartbeat 1 s (py-libp2p default is 120 s, so meshes would form after 2 minutes).
* Mesh degree D=3, D_lo=2, D_hi=6 (libp2p's defaults are 6/4/12): a node receives
  each message about once per mesh peer, so D sets the wire bytes (issue 12: 1.5-2.0
  KB per record per receiving node at D=6, 0.7-1.2 KB at D=3, bench_net). The cost is
  latency under loss: in the simnet (300 nodes, regions of 25) p99 rises from 0.16 to
  0.29 s without loss and from 0.23 to 1.39 s at 20 % message loss. Records sign
  themselves and anti-entropy repairs what a mesh peer withholds, so a smaller mesh
  delays, it cannot lose or forge; IHAVE gossip to 6 peers outside the mesh stays.
* Rate limits: our publisher paces to 50 messages/s per topic (burst 10) and waits
  while any peer's 32-slot outbound RPC queue holds more than 12 RPCs (py-libp2p
  drops silently when full).  Callers batch records into messages of <= 60 KiB
  (one yamux frame; larger ones from peers are refused before they are decoded).
  py-libp2p's own flood check counts per *forwarding* peer and topic, so it is
  raised from 10 to 1000 msgs/s: at 10 it drops our own bursts and anything a relay
  forwards for several origins.
* Scoring (pubsub/score.py is usable): only P4 invalid messages (weight 10, decay
  0.99 per heartbeat) and P5 behaviour penalties; thresholds gossip -40, publish
  -60, graylist -80.  P1-P3 stay off (no activation window, quiet topics would
  penalise honest peers); P7 IP colocation off (loopback tests, shared NATs).
  Eclipse "IP diversity" grafting is off for the same reason.
* Our own ban: a peer whose decaying count of REJECTed gossip / malformed sync
  messages reaches 10 (half-life 300 s) is disconnected, blacklisted in pubsub,
  forgotten from the peer file and not redialled for 600 s.  IGNORE never counts
  (py-libp2p's scorer cannot tell IGNORE from REJECT, it counts both).
* Sync: frames <= 8 MiB, 20 s per read, 300 s per session, 8 concurrent inbound
  sessions; a sync runs with every newly connected peer (both sides start one) and
  every `sync_interval` (30 s) with one random peer.

Measured on loopback (3 hosts in one process, line A-B-C, 1 s heartbeat)
------------------------------------------------------------------------
* Connect: ~250 ms per dial (Noise handshake + yamux + identify).
* Gossip latency, single small messages: p50 3.2 ms A->B, 6.3 ms A->C (max 11 ms).
* 200 publishes from A (100 B or 50 KB each): 200/200 arrive at B and C, in 3.8 s at
  the default 50 msg/s; at 1000 msg/s also 200/200 (1.3 s) thanks to the
  peer-queue back-pressure.  Unpaced py-libp2p delivered 17/200 (shared notes).

py-libp2p 0.8.1 workarounds (see the comments at each site)
-----------------------------------------------------------
* ``host.run()`` never closes connections, and a cancellation that reaches the
  connection tasks first makes ``SwarmConn.close()`` skip the yamux GO_AWAY and the
  socket close (network/connection/swarm_connection.py ``close``/``_cleanup``,
  stream_muxer/yamux/yamux.py ``close``): peers keep a dead connection and sockets
  leak (ResourceWarning).  `NetService` runs the stack shielded and calls
  ``host.close()`` before unwinding it.
* "Nursery is closed to new arrivals" from pubsub.py ``continuously_read_stream``
  (``manager.run_task`` during shutdown) is caught and logged at debug.
* py-libp2p turns off propagation of its ``libp2p`` logger (utils/logging.py
  ``setup_logging``), so its warnings bypass the app's logging config; `build_host`
  routes them back and drops records caused only by trio cancellation.
* py-libp2p's validator API is boolean and its scorer counts every "no" as invalid;
  `AllmendePubsub.push_msg` makes it ACCEPT / IGNORE / REJECT / LOCAL (pubsub.py).
* Interleaved RPC writes on one stream, a bad RPC or a failing per-peer task ending
  the whole pubsub service, and ``SO_REUSEPORT`` on listeners: see pubsub.py and
  host.py.
"""

# First, before any libp2p import: leaves py-libp2p's unused parts unloaded (deferred.py).
from node.net import deferred  # noqa: F401
from node.net.discovery import Backoff, Discovery, PeerBook, split_p2p_addr
from node.net.gossip import (
    MAX_GOSSIP_MESSAGE,
    GossipConfig,
    NetHandler,
    SyncSession,
    scope_of_topic,
    topic_for_scope,
)
from node.net.host import build_host, key_pair_from_seed, peer_id_from_seed
from node.net.pubsub import AllmendePubsub, GossipVerdict
from node.net.service import NetConfig, NetService, NetStatistics
from node.net.syncproto import MAX_FRAME, PROTOCOL_ID, FrameDecoder, encode_frame

__all__ = [
    "MAX_FRAME",
    "MAX_GOSSIP_MESSAGE",
    "PROTOCOL_ID",
    "AllmendePubsub",
    "Backoff",
    "Discovery",
    "FrameDecoder",
    "GossipConfig",
    "GossipVerdict",
    "NetConfig",
    "NetHandler",
    "NetService",
    "NetStatistics",
    "PeerBook",
    "SyncSession",
    "build_host",
    "encode_frame",
    "key_pair_from_seed",
    "peer_id_from_seed",
    "scope_of_topic",
    "split_p2p_addr",
    "topic_for_scope",
]
