"""Plumbing between gRPC's threads and trio.

* :class:`StreamBridge` drives one bidirectional gRPC stream: requests go from trio into a
  queue that gRPC's request thread drains, responses come back through one dedicated reader
  thread that posts them into a trio memory channel, with a credit semaphore so that a slow
  consumer blocks the reader thread (and, through HTTP/2 flow control, the server) instead of
  growing an unbounded buffer.

A client built on these is bound to the trio run that created it.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import trio

__all__ = ["StreamBridge", "StreamEnded", "join_thread"]

_stream_ids = itertools.count(1)


async def join_thread(thread: threading.Thread, timeout: float) -> bool:
    """Wait (shielded from cancellation, at most ``timeout`` s) for ``thread`` to finish."""
    delay = 0.0005
    with trio.CancelScope(shield=True), trio.move_on_after(timeout):
        while thread.is_alive():
            await trio.sleep(delay)
            delay = min(delay * 2, 0.05)
    return not thread.is_alive()


class StreamEnded(Exception):
    """The stream is over. ``error`` is the ``grpc.RpcError`` that ended it, or None when it
    ended cleanly or was closed locally (``closed`` is then True)."""

    def __init__(self, error: Any, closed: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.closed = closed


class _End:
    __slots__ = ("error",)

    def __init__(self, error: Any) -> None:
        self.error = error


_SENTINEL = object()


class StreamBridge:
    """One bidirectional gRPC stream, fed from and read into the current trio run.

    ``method`` is a stream-stream multicallable (e.g. ``WatchStub(channel).Watch``). With
    ``max_buffered`` set, the reader thread stops reading once that many responses wait in the
    trio channel unconsumed. Must be created in the trio thread.
    """

    def __init__(
        self,
        method: Callable[..., Any],
        *,
        name: str,
        metadata: Sequence[tuple[str, str]] = (),
        max_buffered: int | None = None,
    ) -> None:
        self._token = trio.lowlevel.current_trio_token()
        send, recv = trio.open_memory_channel[Any](math.inf)
        self._send: trio.MemorySendChannel[Any] = send
        self._recv: trio.MemoryReceiveChannel[Any] = recv
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._credits = threading.Semaphore(max_buffered) if max_buffered else None
        self._closed = False
        self._end: _End | None = None
        self._call: Any = method(self._request_iter(), metadata=tuple(metadata))
        self._thread = threading.Thread(
            target=self._read, name=f"{name}-{next(_stream_ids)}", daemon=True
        )
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def closed(self) -> bool:
        return self._closed

    # -- trio side -------------------------------------------------------------------------
    def send(self, request: Any) -> None:
        """Queue a request for the stream (never blocks)."""
        if self._closed:
            raise trio.ClosedResourceError("stream is closed")
        self._requests.put(request)

    async def receive(self) -> Any:
        """The next response; raises :class:`StreamEnded` once the stream is over."""
        if self._end is not None:
            raise StreamEnded(self._end.error, self._closed)
        try:
            item = await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            self._end = _End(None)
            raise StreamEnded(None, True) from None
        if type(item) is _End:
            self._end = item
            raise StreamEnded(item.error, self._closed)
        if self._credits is not None:
            self._credits.release()
        return item

    def close(self) -> None:
        """Cancel the call and let the threads finish (idempotent, never blocks)."""
        if self._closed:
            return
        self._closed = True
        self._requests.put(_SENTINEL)
        self._call.cancel()
        if self._credits is not None:
            self._credits.release()
        self._send.close()

    async def aclose(self, timeout: float = 2.0) -> None:
        self.close()
        await join_thread(self._thread, timeout)
        self._recv.close()

    # -- thread side -----------------------------------------------------------------------
    def _request_iter(self) -> Iterator[Any]:
        # Drained by gRPC's own request thread; returns (half-closing) on the sentinel.
        while True:
            item = self._requests.get()
            if item is _SENTINEL:
                return
            yield item

    def _deliver(self, item: Any) -> None:  # trio thread, via run_sync_soon
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            self._send.send_nowait(item)

    def _post(self, item: Any) -> bool:
        try:
            self._token.run_sync_soon(self._deliver, item)
        except trio.RunFinishedError:
            self._closed = True
            return False
        return True

    def _read(self) -> None:
        credits = self._credits
        try:
            for response in self._call:
                if credits is not None:
                    credits.acquire()
                if self._closed or not self._post(response):
                    return
            self._post(_End(None))
        except grpc.RpcError as err:
            self._post(_End(err))
        except Exception as err:  # never let an exception escape a thread
            self._post(_End(err))
