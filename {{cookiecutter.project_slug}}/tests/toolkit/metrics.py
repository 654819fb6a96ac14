"""Reading a worker's Prometheus `/metrics` (the SDK's metrics and the service's counters)."""

from __future__ import annotations

import urllib.request
from collections import defaultdict


def scrape(port: int) -> str:
    """The exposition text at http://127.0.0.1:<port>/metrics (blocking: call it in a thread)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()  # urlopen's result is untyped
    return body.decode()


def totals(exposition: str) -> defaultdict[str, float]:
    """Each metric's value summed over its label sets (Prometheus text format)."""
    values: defaultdict[str, float] = defaultdict(float)
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values[series.split("{", 1)[0]] += float(value)
    return values
