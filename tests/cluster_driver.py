"""Run as a separate process against another Ray cluster (a test process can join only one)."""

from __future__ import annotations

import json
import sys

import ray
from ray import serve

from deployments import services
from deployments.config import Settings


def main() -> None:
    command, address = sys.argv[1], sys.argv[2]
    ray.init(address=address, configure_logging=False, log_to_driver=False)
    if command == "deploy":
        settings = Settings.from_env(**json.loads(sys.argv[3]))
        services.start_serve(settings)
    elif command == "placement":
        handle = serve.get_deployment_handle("Transformer", app_name=services.APP_NAME)
        seen = {}
        for _ in range(40):
            stats = handle.memory.remote().result()
            seen[stats["pid"]] = stats["node_id"]
        status = serve.status().applications[services.APP_NAME].deployments["Transformer"]
        print(json.dumps({"replica_nodes": sorted(set(seen.values())), "replicas": len(seen),
                          "states": status.replica_states,
                          "nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]]}))
    elif command == "replicas":  # running replicas per deployment
        deployments = serve.status().applications[services.APP_NAME].deployments
        print(json.dumps({name: d.replica_states.get("RUNNING", 0) for name, d in deployments.items()}))


if __name__ == "__main__":
    main()
