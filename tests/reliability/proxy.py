"""A TCP proxy that resets connections, for connection-reset faults against the live sandbox.

Each request (a client chunk starting with an HTTP method) may be reset before it is forwarded
(Virtuous never saw it); each response (an upstream chunk starting with ``HTTP/``) may be reset
instead of delivered (Virtuous did the work, the caller never hears). Resets are real TCP RSTs.
With ``only`` (a request-line prefix such as ``b"POST "``), just those requests and their
responses are eligible; the rates are attributes a test may change between calls.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import struct
import threading
from collections import Counter

METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ")


class ResettingProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        before: float,
        after: float,
        seed: int = 7,
        only: bytes = b"",
    ) -> None:
        self.upstream = upstream
        self.before, self.after = before, after
        self.only = only
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.resets: Counter[str] = Counter()
        self.forwarded = 0  # eligible requests passed on to the upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()

    def _roll(self, kind: str, rate: float) -> bool:
        with self.lock:
            hit = self.rng.random() < rate
            if hit:
                self.resets[kind] += 1
            return hit

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        # One thread per connection and select(), never a recv blocked in a second thread: a
        # socket closed under another thread's recv would not send its RST until that returns.
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            _reset(client)
            return
        rules = {client: (upstream, METHODS, "before"), upstream: (client, (b"HTTP/",), "after")}
        request_line = b""  # of the request in progress on this connection (HTTP/1.1: one at a time)
        try:
            while not self.closed.is_set():
                readable, _, _ = select.select(list(rules), [], [], 30)
                if not readable:
                    break
                for src in readable:
                    dst, starts, kind = rules[src]
                    data = src.recv(65536)
                    if not data:
                        return
                    if kind == "before" and data.startswith(starts):
                        request_line = data.split(b"\r\n", 1)[0]
                    eligible = data.startswith(starts) and request_line.startswith(self.only)
                    if eligible and self._roll(kind, getattr(self, kind)):
                        _reset(client)
                        return
                    if eligible and kind == "before":
                        with self.lock:
                            self.forwarded += 1
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.close()


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST (connection reset), not a clean FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
