"""Anti-entropy over libp2p streams: ``/allmende/sync/3.0.0``.

Wire format: each message is one frame, an unsigned LEB128 varint length followed by
that many bytes; a frame is at most 8 MiB.  The initiator speaks first.  The stream
carries exactly one `SyncSession`; either side closes its write half when it is done.

`FrameDecoder` is pure (bytes in, frames out); `drive_initiator` / `drive_responder`
are the I/O edge and work on anything with ``read(n)`` / ``write(data)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import trio

from node.errors import LocalError, RemoteError
from node.net.gossip import SyncSession

PROTOCOL_ID = "/allmende/sync/3.0.0"
MAX_FRAME = 8 * 1024 * 1024
# 8 MiB needs 4 varint bytes; anything longer than 5 is garbage, not a big frame.
_MAX_VARINT_BYTES = 5
READ_CHUNK = 64 * 1024


class FrameTooLarge(RemoteError):
    """The peer announced a frame above the limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__("frame-too-large", f"{size} bytes announced, limit {limit}")


class StreamLike(Protocol):
    """The part of a libp2p `INetStream` the sync driver uses."""

    async def read(self, n: int | None = None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int as an unsigned LEB128 varint."""
    if value < 0:
        raise LocalError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_frame(payload: bytes, max_frame: int = MAX_FRAME) -> bytes:
    """Return `payload` with its varint length prefix.

    Raises:
        LocalError: the payload is larger than `max_frame`.
    """
    if len(payload) > max_frame:
        raise LocalError(f"sync message of {len(payload)} bytes exceeds the {max_frame} limit")
    return encode_varint(len(payload)) + payload


class FrameDecoder:
    """Incremental frame decoder: feed bytes, take complete frames (pure)."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need: int | None = None  # payload length of the frame being read

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

    def next_frame(self) -> bytes | None:
        """Return the next complete frame, or None if more bytes are needed.

        Raises:
            FrameTooLarge: the announced length exceeds `max_frame`.
            RemoteError: the length prefix is not a valid varint (reason ``bad-varint``).
        """
        if self._need is None:
            value = 0
            for i, byte in enumerate(self._buf[:_MAX_VARINT_BYTES]):
                value |= (byte & 0x7F) << (7 * i)
                if not byte & 0x80:
                    if i > 0 and byte == 0:
                        raise RemoteError("bad-varint", "non-minimal length prefix")
                    del self._buf[: i + 1]
                    break
            else:
                if len(self._buf) >= _MAX_VARINT_BYTES:
                    raise RemoteError("bad-varint", "length prefix longer than 5 bytes")
                return None
            if value > self.max_frame:
                raise FrameTooLarge(value, self.max_frame)
            self._need = value
        if len(self._buf) < self._need:
            return None
        frame = bytes(self._buf[: self._need])
        del self._buf[: self._need]
        self._need = None
        return frame

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf)


class EndOfStream(RemoteError):
    """The peer closed its write half."""

    def __init__(self, mid_frame: bool) -> None:
        super().__init__("eof-mid-frame" if mid_frame else "eof", "peer closed the stream")
        self.mid_frame = mid_frame


class FramedStream:
    """Frames over a stream, with a timeout on every read."""

    def __init__(self, stream: StreamLike, read_timeout: float, max_frame: int = MAX_FRAME) -> None:
        self.stream = stream
        self.read_timeout = read_timeout
        self.max_frame = max_frame
        self._decoder = FrameDecoder(max_frame)

    async def read_frame(self) -> bytes:
        """Read one frame.

        Raises:
            RemoteError: timeout (``read-timeout``), EOF, or a bad/oversized frame.
        """
        while (frame := self._decoder.next_frame()) is None:
            with trio.move_on_after(self.read_timeout) as scope:
                try:
                    chunk = await self.stream.read(READ_CHUNK)
                except Exception as exc:  # py-libp2p raises StreamEOF / StreamReset / ...
                    if type(exc).__name__ == "StreamEOF":
                        raise EndOfStream(self._decoder.buffered > 0) from exc
                    raise RemoteError("stream-error", f"{type(exc).__name__}: {exc}") from exc
            if scope.cancelled_caught:
                raise RemoteError("read-timeout", f"no data for {self.read_timeout} s")
            if not chunk:
                raise EndOfStream(self._decoder.buffered > 0)
            self._decoder.feed(chunk)
        return frame

    async def write_frame(self, payload: bytes) -> None:
        """Write one frame (raises LocalError if `payload` is too large)."""
        await self.stream.write(encode_frame(payload, self.max_frame))


class SessionDriver(Protocol):
    """How the network layer runs a session's steps and merges what they bring.

    `step(fn, *args)` runs one sans-IO step (``receive_message``, ``generate_message``)
    -- the daemon runs it in a worker thread while nothing changes the replica;
    `ingest(session)` merges what the session received.
    """

    async def sync_step(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    async def ingest_sync(self, peer: str, session: Any) -> None: ...


async def _receive(driver: SessionDriver, session: SyncSession, data: bytes) -> None:
    try:
        await driver.sync_step(session.receive_message, data)
    except RemoteError:
        raise  # the peer broke the protocol (SyncError is a RemoteError)
    except (trio.Cancelled, LocalError):
        raise
    except Exception as exc:
        # Anything else is a bug of ours, not the peer's doing: never counted against it.
        raise LocalError(f"sync session failed: {type(exc).__name__}: {exc}") from exc


async def drive_initiator(
    framed: FramedStream, session: SyncSession, driver: SessionDriver, peer: str
) -> int:
    """Run `session` as initiator until it has nothing more to say.

    After every message received, what it brought is merged before the next message
    is generated.

    Returns:
        Number of messages exchanged (sent + received).

    Raises:
        RemoteError: the peer timed out, closed early or sent something bad.
        LocalError: a step or merging failed here.
    """
    msg = await driver.sync_step(session.generate_message)
    count = 0
    while msg is not None:
        await framed.write_frame(msg)
        count += 1
        if session.done:
            break
        reply = await framed.read_frame()
        count += 1
        await _receive(driver, session, reply)
        await driver.ingest_sync(peer, session)
        if session.done:
            msg = await driver.sync_step(session.generate_message)
            if msg is not None:
                await framed.write_frame(msg)
                count += 1
            break
        msg = await driver.sync_step(session.generate_message)
    return count


async def drive_responder(
    framed: FramedStream, session: SyncSession, driver: SessionDriver, peer: str
) -> int:
    """Run `session` as responder until it is done or the initiator stops.

    Returns:
        Number of messages exchanged (sent + received).

    Raises:
        RemoteError: the peer timed out, sent something bad or hung up mid-frame.
        LocalError: a step or merging failed here.
    """
    count = 0
    while not session.done:
        try:
            msg = await framed.read_frame()
        except EndOfStream as exc:
            if exc.mid_frame:
                raise
            break  # the initiator had nothing more to say
        count += 1
        await _receive(driver, session, msg)
        # The reply never depends on what was received, so it goes out first.
        reply = await driver.sync_step(session.generate_message)
        if reply is not None:
            await framed.write_frame(reply)
            count += 1
        await driver.ingest_sync(peer, session)
    return count
