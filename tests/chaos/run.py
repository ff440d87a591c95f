"""One chaos run: bring the topology up, run the workload under a seeded
fault schedule, heal, read everything back, check the history, and write
the run directory:

    history.jsonl   every operation of every client and of the nemesis
    faults.jsonl    the fault log (begin and heal of each fault)
    schedule.txt    the schedule drawn from the seed
    results.json    counts and anomalies per check (machine-readable)
    report.md       the same for people, with excerpts
    plot.png        throughput and latency over time, fault windows shaded

Usage: python tests/chaos/run.py --topology processes --duration 60 --seed 7
(`scripts/chaos.sh` wraps it); `run.py --recheck RUN_DIR...` checks finished
runs again with the current checker. Exit status 0 when every check passed, 1
when one found an anomaly, 2 on a harness error.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import checker  # noqa: E402
import faults  # noqa: E402
import report  # noqa: E402
import workload  # noqa: E402
from topology import ROOT, make_topology  # noqa: E402

CLIENTS = [
    # (role, process name, extra args)
    ("confluent-producer", "ck-producer", []),
    ("kafka-python-producer", "kp-producer", []),
    ("assign-consumer", "assign-consumer", []),
    ("subscribe-consumer", "subscribe-consumer", []),
    ("prober", "prober", []),
]


def create_topic(bootstrap, topic, partitions, replication_factor, config, timeout=60):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + timeout
    while True:
        try:
            new = NewTopic(topic, partitions, replication_factor, config=config)
            admin.create_topics([new])[topic].result(timeout=10)
            break
        except Exception as e:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" in str(e) or time.time() > deadline:
                break
            time.sleep(0.5)
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t and not t.error and len(t.partitions) == partitions and all(p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.2)
    raise TimeoutError(f"topic {topic} not ready")


def start_clients(run_dir, bootstrap, args):
    procs = []
    for i, (role, name, extra) in enumerate(CLIENTS):
        if role.endswith("producer") and args.producers and role.split("-producer")[0] not in args.producers:
            continue
        cmd = [sys.executable, str(HERE / "workload.py"), role, "--bootstrap", bootstrap,
               "--history", str(run_dir / "histories" / f"{name}.jsonl"), "--process", name,
               "--topic", args.topic, "--partitions", str(args.partitions), "--rate", str(args.rate),
               "--seed", str(args.seed * 100 + i), "--acks", args.acks,
               "--idempotence", str(int(args.idempotence)), *extra]
        log = open(run_dir / "histories" / f"{name}.log", "wb")
        procs.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
    return procs


def stop_clients(procs, timeout=45):
    for _, p in procs:
        p.send_signal(signal.SIGTERM)
    deadline = time.time() + timeout
    for name, p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def merge_histories(run_dir):
    ops = []
    for path in sorted((run_dir / "histories").glob("*.jsonl")):
        with open(path) as f:
            for line in f:
                if line.strip():
                    try:
                        ops.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line torn by a killed client
    ops.sort(key=lambda op: op["time"])
    with open(run_dir / "history.jsonl", "w") as f:
        for op in ops:
            f.write(json.dumps(op) + "\n")
    return ops


def needed_ends(ops):
    needed = {}
    for op in ops:
        if op.get("f") == "send" and op["type"] == "ok":
            needed[op["partition"]] = max(needed.get(op["partition"], 0), op["offset"] + 1)
    return needed


def run(args) -> int:
    if args.idempotence and args.acks not in ("all", "-1"):
        # Both clients refuse an idempotent producer without acks=all; a run
        # whose producers never start would pass every check vacuously.
        print(f"chaos: --acks {args.acks} needs --no-idempotence (idempotence requires acks=all)")
        return 2
    run_dir = Path(args.out or ROOT / "target" / "chaos" / time.strftime(f"%Y%m%d-%H%M%S-{args.topology}-seed{args.seed}"))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "histories").mkdir(exist_ok=True)
    print(f"chaos: run directory {run_dir}", flush=True)

    topo = make_topology(args.topology, run_dir, nodes_file=args.nodes, subnet=args.subnet,
                         broker_args=sum((["--override", o] for o in args.broker_override), []))
    fault_names = args.faults.split(",") if args.faults else list(topo.default_faults)
    unknown = [f for f in fault_names if f not in topo.faults]
    if unknown:
        print(f"chaos: {args.topology} cannot inject {', '.join(unknown)} (it can: {', '.join(topo.faults)})")
        return 2
    fault_time = None if args.count else max(1.0, args.duration - args.tail)
    steps = faults.draw_schedule(args.seed, fault_names, [n.name for n in topo.nodes],
                                 duration=fault_time, count=args.count,
                                 quiet=(args.quiet_min, args.quiet_max), hold=(args.hold_min, args.hold_max),
                                 in_order=args.in_order)
    schedule = faults.format_schedule(steps)
    (run_dir / "schedule.txt").write_text(f"seed {args.seed}, faults {','.join(fault_names)}\n{schedule}\n")
    print(f"chaos: seed {args.seed}, {len(steps)} faults:\n{schedule}", flush=True)

    meta = {"topology": args.topology, "nodes_file": args.nodes, "nodes": None, "seed": args.seed,
            "faults": fault_names,
            "duration_s": args.duration, "count": args.count, "partitions": args.partitions,
            "rate_per_producer": args.rate, "acks": args.acks, "idempotence": args.idempotence, "liveness_window_s": args.liveness,
            "broker_overrides": args.broker_override, "argv": sys.argv[1:]}
    procs, nemesis = [], None
    try:
        topo.up()
        meta["nodes"] = topo.describe()
        bootstrap = topo.bootstrap
        brokers = sum(1 for n in meta["nodes"] if n.get("broker", True))
        replication = args.replication_factor or min(3, brokers)
        meta["replication_factor"] = replication
        create_topic(bootstrap, args.topic, args.partitions, replication,
                     dict(c.split("=", 1) for c in args.topic_config))
        procs = start_clients(run_dir, bootstrap, args)
        time.sleep(args.warmup)
        nemesis = faults.Nemesis(topo, steps, run_dir / "faults.jsonl", run_dir / "histories" / "nemesis.jsonl",
                                 topic=args.topic, partitions=args.partitions, seed=args.seed)
        started = time.time()
        nemesis.start()
        nemesis.join()
        # The tail: faults over, clients still running, so liveness shows.
        time.sleep(max(args.tail, args.duration - (time.time() - started) if not args.count else args.tail))
        # A client that exited on its own (a crash, a refused configuration)
        # left a history that checks vacuously: a harness error, not a pass.
        meta["clients_died"] = {name: p.returncode for name, p in procs if p.poll() is not None}
        stop_clients(procs)
        ops = merge_histories(run_dir)
        ends, covered = workload.final_read(bootstrap, args.topic, args.partitions, needed_ends(ops),
                                            run_dir / "histories" / "final.jsonl", timeout_s=args.final_timeout)
        meta["final_read"] = {"ends": ends, "covered_every_acknowledged_offset": covered}
        meta["nemesis_errors"] = nemesis.errors
        windows = nemesis.windows
    finally:
        if procs:
            stop_clients(procs, timeout=5)
        if nemesis and nemesis.is_alive():
            nemesis.stop()
        topo.down()

    ops = checker.index_history(merge_histories(run_dir))
    results = checker.check_all(ops, liveness_window_s=args.liveness, acks_all=args.acks in ("all", "-1"))
    report.write(run_dir, meta, ops, results, windows)
    failed = [r.name for r in results if not r.ok]
    print(f"chaos: {len(ops)} operations, {len(windows)} faults; "
          + ("every check passed" if not failed else f"FAILED: {', '.join(failed)}"), flush=True)
    print(f"chaos: report {run_dir / 'report.md'}", flush=True)
    if meta.get("clients_died"):
        print(f"chaos: harness error: clients exited during the run: {meta['clients_died']} "
              f"(see {run_dir / 'histories'}/*.log)", flush=True)
        return 2
    return 1 if failed else 0


def recheck(run_dir) -> int:
    """Runs the (current) checker again over a finished run's history and
    rewrites its report, results and plot."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "results.json").read_text())["meta"]
    windows, begun = [], {}
    for line in open(run_dir / "faults.jsonl"):
        event = json.loads(line)
        ident = (event["fault"], event["node"], event["at"])
        if event["event"] == "fault":
            begun[ident] = event["time"]
        elif ident in begun:
            windows.append((event["fault"], event.get("target", event["node"]), begun.pop(ident), event["time"],
                            event.get("error")))
    ops = checker.load_history(run_dir / "history.jsonl")
    results = checker.check_all(ops, liveness_window_s=meta["liveness_window_s"],
                                acks_all=str(meta.get("acks", "all")) in ("all", "-1"))
    report.write(run_dir, meta, ops, results, windows)
    failed = [r.name for r in results if not r.ok]
    print(f"chaos: {run_dir}: " + ("every check passed" if not failed else f"FAILED: {', '.join(failed)}"))
    return 1 if failed else 0


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topology", default="processes", choices=["processes", "compose"])
    ap.add_argument("--nodes", help="compose: a JSON list of node specs (topology.NodeSpec fields)")
    ap.add_argument("--subnet", default="172.30.77.0/24", help="compose: the project's private subnet")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of faults plus the tail")
    ap.add_argument("--count", type=int, help="exactly this many faults (the duration follows)")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--faults", help="comma-separated; default: all the topology can do")
    ap.add_argument("--in-order", action="store_true",
                    help="the faults in the order given, round and round, instead of drawn at random")
    ap.add_argument("--quiet-min", type=float, default=2.0)
    ap.add_argument("--quiet-max", type=float, default=6.0)
    ap.add_argument("--hold-min", type=float, default=1.0)
    ap.add_argument("--hold-max", type=float, default=5.0)
    ap.add_argument("--tail", type=float, default=10.0, help="seconds without faults before stopping")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--liveness", type=float, default=30.0, help="the liveness window T, seconds")
    ap.add_argument("--final-timeout", type=float, default=60.0)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rate", type=float, default=50.0, help="sends per second per producer")
    ap.add_argument("--producers", help="comma-separated subset: confluent,kafka-python")
    ap.add_argument("--acks", default="all", help="the producers' acks: all, 1 or 0")
    ap.add_argument("--no-idempotence", dest="idempotence", action="store_false",
                    help="plain retrying producers instead of idempotent ones")
    ap.add_argument("--topic", default=workload.TOPIC)
    ap.add_argument("--replication-factor", type=int, help="default: the broker count, at most 3")
    ap.add_argument("--topic-config", action="append", default=[], metavar="KEY=VALUE",
                    help="a config of the test topic, e.g. min.insync.replicas=2 (repeatable)")
    ap.add_argument("--broker-override", action="append", default=[], metavar="KEY=VALUE",
                    help="processes: a broker setting (repeatable)")
    ap.add_argument("--out", help="the run directory (default target/chaos/<time>-<topology>-seed<N>)")
    return ap.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--recheck"]:
        return max([recheck(d) for d in argv[1:]], default=2)
    args = parse(argv)
    if args.producers:
        args.producers = args.producers.split(",")
    try:
        return run(args)
    except Exception:  # noqa: BLE001 - any failure of the harness itself
        traceback.print_exc()
        print("chaos: harness error (above)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
