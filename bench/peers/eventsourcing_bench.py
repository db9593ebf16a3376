#!/usr/bin/env python3
"""The peer of shiplog's deploy command in the Python `eventsourcing` library
(pinned in requirements.txt) on PostgreSQL: W writer processes, each command
loading its aggregate from the store, appending one event and saving it, for S
seconds after a warm-up. Prints one JSON line:

    {"measure": "eventsourcing", "version": "9.5.6", "writers": 16, "aggregates": 200,
     "seconds": 20.0, "commands": N, "commands_per_s": R, "conflicts": C}

The library is configured through its environment variables
(PERSISTENCE_MODULE=eventsourcing.postgres, POSTGRES_DBNAME, POSTGRES_HOST,
POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD); `shiplog-bench all` sets them
and creates the venv under the cargo target directory (target/bench-venv).
Defaults otherwise: no snapshots, no aggregate cache, so every command reads
the aggregate's whole history, as shiplog's command path does.
"""

import argparse
import importlib.metadata
import json
import multiprocessing as mp
import queue
import random
import time
import uuid

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

CONFIG = {
    "image": {"registry": "registry.example.com", "repository": "bench/app", "tag": "1.0.0"},
    "containerPort": 8080,
    "env": {"MODE": "bench"},
    "replicas": 1,
}


class Usecase(Aggregate):
    """A usecase that records requested deployments, as shiplog's aggregate does."""

    @staticmethod
    def create_id(name: str) -> uuid.UUID:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"shiplog-bench/{name}")

    def __init__(self, name: str):
        self.name = name
        self.deployments = []

    @event("DeploymentRequested")
    def request_deployment(self, deployment_id: str, config: dict) -> None:
        self.deployments.append(deployment_id)


class Deployments(Application):
    """The application the writers command."""


def writer(index, args, construct, go, results):
    # One process at a time builds its application: the library (re)runs its CREATE
    # statements on construction, and concurrent ones fail ("tuple concurrently updated").
    with construct:
        app = Deployments()
        if index == 0:
            for i in range(args.aggregates):
                app.save(Usecase(f"usecase-{i}"))
    ids = [Usecase.create_id(f"usecase-{i}") for i in range(args.aggregates)]
    rng = random.Random(index)
    go.wait(timeout=120)
    started = time.time()
    window_start = started + args.warmup
    end = window_start + args.seconds
    ok = 0
    conflicts = 0
    while time.time() < end:
        usecase = app.repository.get(ids[rng.randrange(len(ids))])
        usecase.request_deployment(str(uuid.uuid4()), CONFIG)
        try:
            app.save(usecase)
        except IntegrityError:
            # Another writer appended to the same aggregate first: the command is retried
            # by the next iteration, as shiplog retries its own.
            conflicts += 1
            continue
        if time.time() >= window_start and time.time() <= end:
            ok += 1
    app.close()
    results.put({"ok": ok, "conflicts": conflicts})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--aggregates", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    # fork: the parent opens no connection before the writers start, and the event
    # topics (`__main__:Usecase…`) read the same in every process.
    ctx = mp.get_context("fork")
    construct = ctx.Lock()
    go = ctx.Barrier(args.writers)
    results = ctx.Queue()
    writers = [ctx.Process(target=writer, args=(i, args, construct, go, results)) for i in range(args.writers)]
    for w in writers:
        w.start()
    counts = []
    deadline = time.time() + args.warmup + args.seconds + 180
    while len(counts) < len(writers):
        try:
            counts.append(results.get(timeout=1))
        except queue.Empty:
            crashed = [w.exitcode for w in writers if w.exitcode not in (None, 0)]
            if crashed or time.time() > deadline:
                for w in writers:
                    w.terminate()
                raise SystemExit(f"writers failed (exit codes {crashed}) or did not finish in time")
    for w in writers:
        w.join()
    failed = [w.exitcode for w in writers if w.exitcode != 0]
    if failed:
        raise SystemExit(f"{len(failed)} writer processes failed: exit codes {failed}")
    commands = sum(c["ok"] for c in counts)
    print(json.dumps({
        "measure": "eventsourcing",
        "version": importlib.metadata.version("eventsourcing"),
        "writers": args.writers,
        "aggregates": args.aggregates,
        "seconds": args.seconds,
        "commands": commands,
        "commands_per_s": commands / args.seconds,
        "conflicts": sum(c["conflicts"] for c in counts),
    }), flush=True)


if __name__ == "__main__":
    main()
