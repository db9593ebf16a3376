#!/usr/bin/env python3
"""Writes a realistic ledger as COPY rows for the `events` table: U usecases of 20
real PhariaOS-shaped events each (registration, deploys, a config change,
supersessions, a restart that succeeds and one that fails, a failed deploy), the
payloads the projections read. For timing read-model work such as a rebuild:

    shiplog projections rebuild --database-url postgres://postgres@127.0.0.1:5432/ledger
    python3 bench/fill-ledger.py 10000 | psql -h 127.0.0.1 -U postgres -d ledger \
      -c "\\copy events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) FROM STDIN"
    time shiplog projections rebuild --database-url postgres://postgres@127.0.0.1:5432/ledger

(the first rebuild creates and migrates the empty database). To compare two
builds, copy the filled database (`CREATE DATABASE b TEMPLATE a`) and rebuild
each copy with one binary, alternating rounds.
"""
import json, sys, uuid
U = int(sys.argv[1])
at = "2026-01-01T00:00:00Z"
def ev(t, body): return t, json.dumps({t: {**body, "at": at}})
def cfg(tag): return {"image": {"registry": "r.example.com", "repository": "team/app", "tag": tag},
                      "containerPort": 8080, "env": {"MODE": "prod", "LEVEL": tag}, "replicas": 1}
out = sys.stdout
for u in range(U):
    uid = str(uuid.UUID(int=u + 1))
    d = [str(uuid.uuid5(uuid.NAMESPACE_OID, f"{u}-{k}")) for k in range(4)]
    r = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{u}-{k}")) for k in range(2)]
    events = [
        ev("UsecaseRegistered", {"usecaseId": uid, "name": f"bench-{u}", "description": ""}),
        ev("DeploymentRequested", {"deploymentId": d[0], "config": cfg("1.0.0")}),
        ev("DeploymentStarted", {"deploymentId": d[0]}),
        ev("DeploymentSucceeded", {"deploymentId": d[0]}),
        ev("DeploymentRequested", {"deploymentId": d[1], "config": cfg("1.0.1")}),
        ev("ConfigChangeRequested", {"deploymentId": d[1], "basedOn": d[0], "env": {"MODE": "prod", "LEVEL": "1.0.1"}}),
        ev("DeploymentStarted", {"deploymentId": d[1]}),
        ev("DeploymentSucceeded", {"deploymentId": d[1]}),
        ev("DeploymentSuperseded", {"deploymentId": d[0], "supersededBy": d[1]}),
        ev("RestartRequested", {"restartId": r[0], "deploymentId": d[1]}),
        ev("RestartSucceeded", {"restartId": r[0], "deploymentId": d[1]}),
        ev("DeploymentRequested", {"deploymentId": d[2], "config": cfg("1.1.0")}),
        ev("DeploymentStarted", {"deploymentId": d[2]}),
        ev("DeploymentSucceeded", {"deploymentId": d[2]}),
        ev("DeploymentSuperseded", {"deploymentId": d[1], "supersededBy": d[2]}),
        ev("RestartRequested", {"restartId": r[1], "deploymentId": d[2]}),
        ev("RestartFailed", {"restartId": r[1], "deploymentId": d[2], "message": "crashed"}),
        ev("DeploymentRequested", {"deploymentId": d[3], "config": cfg("1.2.0-broken")}),
        ev("DeploymentStarted", {"deploymentId": d[3]}),
        ev("DeploymentFailed", {"deploymentId": d[3], "message": "the image cannot be pulled"}),
    ]
    for seq, (t, payload) in enumerate(events, 1):
        meta = json.dumps({"actor": "process-manager" if seq % 3 == 0 else f"actor-{u % 50}", "request_id": f"r-{u}-{seq}"})
        esc = lambda s: s.replace("\\", "\\\\")
        out.write(f"Usecase\t{uid}\t{seq}\t{t}\t1.0\t{esc(payload)}\t{esc(meta)}\n")
