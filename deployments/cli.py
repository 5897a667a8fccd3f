"""The `prog-image` command."""

from __future__ import annotations

import argparse
import signal
import threading

from deployments.config import Settings, describe


def _serve(_: argparse.Namespace) -> None:
    from deployments import services

    settings = Settings.from_env()
    if settings.amqp_url:
        services.ensure_rabbitmq(settings.amqp_url)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with services.mongodb(settings) as settings:
        services.start_serve(settings)
        print(f"prog-image is serving on http://{settings.http_host}:{settings.http_port} "
              f"(MongoDB {settings.mongo_url}); Ctrl-C stops it", flush=True)
        stop.wait()
        import ray

        ray.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="prog-image", description="prog-image image service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (local Ray and embedded mongod by default)").set_defaults(
        func=_serve)
    commands.add_parser("config", help="print every setting, its value and what it does").set_defaults(
        func=lambda _: print(describe()))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
