"""CPU seconds by kind of process (mongod, each Serve deployment, Ray's own daemons, RabbitMQ, the
client): where a mode's machine CPU went, read from /proc between two snapshots."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_KINDS = (("thumbor", "thumbor"), ("mongod", "mongod"), ("Transformer", "transform replicas"), ("Bridge", "bridge"),
          ("Api", "ingress replicas"), ("ServeReplica", "other replicas"), ("ServeController", "serve controller"),
          ("ProxyActor", "serve proxy"), ("raylet", "raylet"), ("gcs_server", "gcs"), ("beam.smp", "rabbitmq"),
          ("haproxy", "haproxy"), ("HAProxyManager", "haproxy manager"),
          ("ray", "other ray"))


def _kind(pid: int, cmdline: str) -> str:
    if pid == os.getpid():
        return "client (this process)"
    for needle, kind in _KINDS:
        if needle in cmdline:
            return kind
    return "other"


def snapshot() -> Counter[str]:
    """CPU seconds so far of every live process, by kind (a process that ended meanwhile is lost)."""
    seen: Counter[str] = Counter()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        seen[_kind(int(entry.name), cmdline)] += (int(fields[11]) + int(fields[12])) / _TICK
    return seen


def split(before: Counter[str], after: Counter[str], per: int) -> str:
    """'kind ms, ...' per unit of work (largest first)."""
    spent = {kind: (after[kind] - before.get(kind, 0)) * 1000 / per for kind in after}
    return ", ".join(f"{kind} {ms:.1f}" for kind, ms in sorted(spent.items(), key=lambda kv: -kv[1]) if ms >= 0.1)
