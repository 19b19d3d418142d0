"""A small HTTP/1.1 load generator for loopback: pre-built requests, keep-alive connections.

It parses only the status line and Content-Length or chunked framing, so it costs far less
CPU than a full client and leaves the (shared) cores to the server under test. Every run is
bounded by a request count and a time limit.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


def request(
    method: str, path: str, host: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "requests": self.count,
            "seconds": round(self.seconds, 2),
            "per_second": round(self.rate(), 1),
            "p50_ms": round(self.quantile(0.5) * 1000, 2),
            "p95_ms": round(self.quantile(0.95) * 1000, 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else float("nan"),
            "errors": sum(n for s, n in self.statuses.items() if s >= 400),
        }


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        return status, body
    length = 0
    marker = lowered.find(b"content-length:")
    if marker >= 0:
        length = int(lowered[marker + 15 : lowered.find(b"\r\n", marker)])
    return status, await reader.readexactly(length) if length else b""


async def run(
    host: str,
    port: int,
    next_request: Callable[[int], bytes | None],
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    on_body: Callable[[bytes], None] | None = None,
) -> Result:
    """Send requests from ``next_request(i)`` (None: stop) on ``concurrency`` connections."""
    result = Result()
    counter = iter(range(max_requests))
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                payload = next_request(i)
                if payload is None:
                    return
                started = time.perf_counter()
                writer.write(payload)
                status, body = await _read_response(reader)
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] += 1
                if on_body is not None:
                    on_body(body)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
