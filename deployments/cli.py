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
    with services.mongodb(settings) as settings:
        services.start_serve(settings)
        for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs handlers of its own
            signal.signal(sig, lambda *_: stop.set())
        print(f"prog-image is serving on http://{settings.http_host}:{settings.http_port} "
              f"(MongoDB {settings.mongo_url}); Ctrl-C stops it", flush=True)
        stop.wait()
        services.shutdown_ray()


def _batch_submit(args: argparse.Namespace) -> None:
    from deployments.batch import producer

    settings = Settings.from_env()
    done = producer.submit(args.sources, args.ops, amqp_url=settings.amqp_url, queue=settings.amqp_queue,
                           wait=args.wait, timeout_s=args.timeout)
    print(producer.summary(done))
    incomplete = len(done.results) < len(done.sent) or any(r.get("state") != "done" for r in done.results.values())
    if args.wait and incomplete:
        raise SystemExit(1)


def _batch_schema(_: argparse.Namespace) -> None:
    import json

    from deployments.batch.messages import schema

    print(json.dumps(schema(), indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="prog-image", description="prog-image image service")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the service (local Ray and embedded mongod by default)").set_defaults(
        func=_serve)
    commands.add_parser("config", help="print every setting, its value and what it does").set_defaults(
        func=lambda _: print(describe()))
    batch = commands.add_parser("batch", help="bulk conversion jobs over RabbitMQ").add_subparsers(
        dest="batch_command", required=True)
    submit = batch.add_parser("submit", help="publish images (files, directories) or image ids as jobs")
    submit.add_argument("sources", nargs="+", metavar="DIR_OR_FILE_OR_ID")
    submit.add_argument("--ops", required=True, help="comma-separated operations, e.g. png,grayscale")
    submit.add_argument("--wait", action="store_true", help="wait for the results, with a progress bar")
    submit.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for results")
    submit.set_defaults(func=_batch_submit)
    batch.add_parser("schema", help="print the JSON Schema of a job message").set_defaults(func=_batch_schema)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
