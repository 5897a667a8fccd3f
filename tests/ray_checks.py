"""What Ray knows about the replicas: used to prove that nothing crashed."""

from __future__ import annotations

from ray._private import state


def crashed_replicas() -> list[str]:
    """Serve replicas whose process died unexpectedly (a crash, OOM kill or SIGKILL), not a clean stop."""
    crashed = []
    for actor in state.actors().values():
        cause = str(actor.get("DeathCause") or "")
        if (actor["State"] == "DEAD" and "ServeReplica" in (actor.get("Name") or actor["ActorClassName"])
                and ("worker process has died" in cause or "OUT_OF_MEMORY" in cause)):
            crashed.append(f"{actor.get('Name')} pid {actor.get('Pid')}")
    return crashed
