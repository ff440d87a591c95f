#!/usr/bin/env python3
"""The benchmark suite of issue 5: gregor side by side with a peer broker
(Tansu, memory engine) and with this machine's own limits (iperf3 loopback,
fio sequential writes), every scenario interleaved run by run. The security
group (issue 11) repeats three scenarios against gregor brokers with SSL and
SASL_SSL listeners and reports them as ratios to plaintext in the same run.

Run it through scripts/bench.sh, which builds what it needs. Writes every
raw line to bench/results/<date>.jsonl and prints a markdown table of
medians, spreads (min-max) and ratios. A measurement, not a test: nothing
here asserts a time.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_BIN = ROOT / "bench" / "target" / "release" / "gregor-bench"
KIB = 1024
# The security rows: the same scenarios against brokers with these listeners.
SECURE_PROTOCOLS = {"ssl": "SSL", "sasl_ssl": "SASL_SSL"}
# A throwaway SCRAM user of a throwaway broker, created from its environment.
SASL_USER, SASL_PASSWORD = "bench", "bench-secret"


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.001)
    raise TimeoutError(f"port {port} did not open")


def proc_status(pid):
    """VmRSS, VmHWM, RssAnon (heap) and RssFile (mapped files) in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def cpu_seconds(pid):
    """utime + stime of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------- brokers

class Broker:
    """A broker process on a free loopback port."""

    def __init__(self, name, argv_for_port, env=None, workdir=None):
        self.name = name
        self.argv_for_port = argv_for_port
        self.env = dict(os.environ, **(env or {}))
        self.workdir = workdir
        self.proc = None
        self.port = None

    def start(self):
        self.port = free_port()
        argv = self.argv_for_port(self.port)
        log(f"start {self.name}: {' '.join(map(str, argv))}")
        self.log_file = open(Path(self.workdir) / f"{self.name}.log", "ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log_file,
                                     stderr=self.log_file, cwd=self.workdir)
        wait_for_port(self.port, self.proc)
        self.startup_ms = (time.perf_counter() - started) * 1000
        return self

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def gregor_broker(binary, workdir, name="gregor", overrides=(), protocol="PLAINTEXT", env=None):
    data = Path(workdir) / f"{name}-data"

    def argv(port):
        extra = []
        for item in overrides:
            extra += ["--override", item]
        return [binary, "broker", "--data-dir", data,
                "--listeners", f"{protocol}://127.0.0.1:{port}",
                "--admin", f"127.0.0.1:{free_port()}", *extra]
    return Broker(name, argv, env={"GREGOR_LOG": "warn", **(env or {})}, workdir=workdir)


def secure_gregor_brokers(binary, workdir):
    """The brokers of the security rows, beside the plaintext "gregor" one
    with the same defaults: an SSL listener (no client certificates) and a
    SASL_SSL one with a SCRAM user from the environment. Certificates from
    `gregor security init`; returns the brokers and, per broker, the client
    properties file that reaches it."""
    certs = Path(workdir) / "certs"
    subprocess.run([str(binary), "security", "init", str(certs), "--hosts", "localhost,127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    tls = [f"ssl.keystore.location={certs}/broker-keystore.pem", "ssl.client.auth=none"]
    brokers, client_configs = {}, {}
    for kind, protocol in SECURE_PROTOCOLS.items():
        name = f"gregor-{kind}"
        client = {"security.protocol": protocol, "ssl.ca.location": f"{certs}/ca.pem"}
        env = None
        if protocol == "SASL_SSL":
            env = {"KAFKA_CLIENT_USERS": SASL_USER, "KAFKA_CLIENT_PASSWORDS": SASL_PASSWORD}
            client.update({"sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": SASL_USER,
                           "sasl.password": SASL_PASSWORD})
        brokers[name] = gregor_broker(binary, workdir, name, tls, protocol, env).start()
        path = Path(workdir) / f"{name}-client.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in client.items()))
        client_configs[name] = path
    return brokers, client_configs


def tansu_broker(binary, workdir, name="tansu"):
    def argv(port):
        url = f"tcp://127.0.0.1:{port}"
        return [binary, "broker",
                "--storage-engine", "memory://tansu/",
                "--listener-url", url,
                "--advertised-listener-url", url]
    return Broker(name, argv, env={"RUST_LOG": "warn"}, workdir=workdir)


class Sampler:
    """Samples a process's RSS every 50 ms while a run is in progress."""

    def __init__(self, pid):
        self.pid, self.peak_rss, self.peak_anon = pid, 0.0, 0.0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop_event.is_set():
            try:
                status = proc_status(self.pid)
                self.peak_rss = max(self.peak_rss, status["VmRSS"])
                self.peak_anon = max(self.peak_anon, status.get("RssAnon", 0.0))
            except (OSError, KeyError):
                return
            self.stop_event.wait(0.05)

    def __enter__(self):
        self.cpu_before = cpu_seconds(self.pid)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()
        self.cpu = cpu_seconds(self.pid) - self.cpu_before
        self.status = proc_status(self.pid)


# ------------------------------------------------------------ scenarios

def scenarios(quick):
    """(key, title, mode, broker kind, bench arguments). Sizes keep the full
    suite to a few minutes on a 2-core machine. Kinds: "default" and
    "durable" run on every target; "ssl" and "sasl_ssl" (the security group,
    gregor only) repeat three plaintext scenarios over those listeners."""
    n100 = 20_000 if quick else 2_000_000
    n1k = 5_000 if quick else 500_000
    n_durable = 2_000 if quick else 200_000
    e2e = ["--warmup-s", "0.5", "--duration-s", "1"] if quick else ["--warmup-s", "2", "--duration-s", "8"]
    rate = (lambda r: str(r // 10)) if quick else str
    plain = [
        ("produce_100B_acks1", "produce 100 B, acks=1", "produce", "default",
         ["--messages", str(n100), "--size", "100", "--acks", "1"]),
        ("produce_1KiB_acksall", "produce 1 KiB, acks=all", "produce", "default",
         ["--messages", str(n1k), "--size", str(KIB), "--acks", "all"]),
        # The same two produces with lz4: what verifying a compressed batch
        # (counting its records through the bounded decompression) costs.
        ("produce_100B_acks1_lz4", "produce 100 B, acks=1, lz4", "produce", "default",
         ["--messages", str(n100), "--size", "100", "--acks", "1", "--compression", "lz4"]),
        ("produce_1KiB_acksall_lz4", "produce 1 KiB, acks=all, lz4", "produce", "default",
         ["--messages", str(n1k), "--size", str(KIB), "--acks", "all", "--compression", "lz4"]),
        ("consume_1KiB", "consume 1 KiB (from the beginning)", "consume", "default",
         ["--messages", str(n1k)]),
        ("e2e_1KiB_10k_linger0", "e2e 1 KiB @ 10 000/s, linger.ms=0", "e2e", "default",
         ["--size", str(KIB), "--rate", rate(10_000), "--linger-ms", "0", *e2e]),
        ("e2e_1KiB_10k_default", "e2e 1 KiB @ 10 000/s, client default linger", "e2e", "default",
         ["--size", str(KIB), "--rate", rate(10_000), *e2e]),
        ("e2e_100B_50k", "e2e 100 B @ 50 000/s", "e2e", "default",
         ["--size", "100", "--rate", rate(50_000), *e2e]),
        ("produce_1KiB_acksall_durable", "produce 1 KiB, acks=all, flush.interval.messages=1",
         "produce", "durable",
         ["--messages", str(n_durable), "--size", str(KIB), "--acks", "all"]),
    ]
    secure = [(f"{key}_{kind}", f"{title}, over {protocol}", mode, kind, bench_args)
              for kind, protocol in SECURE_PROTOCOLS.items()
              for key, title, mode, _, bench_args in plain if key in SECURITY_BASE_KEYS]
    return plain + secure


# The plaintext scenarios the security group repeats (and is compared with).
SECURITY_BASE_KEYS = ("produce_1KiB_acksall", "consume_1KiB", "e2e_1KiB_10k_linger0")


def selected_keys(only):
    """`--only` expanded: "security" names the whole group; a security key
    brings its plaintext row (the ratio's denominator) and a consume its
    produce (which fills the topic it reads)."""
    if not only:
        return None
    keys = set()
    for key in only.split(","):
        if key == "security":
            keys.update(SECURITY_BASE_KEYS)
            keys.update(f"{base}_{kind}" for base in SECURITY_BASE_KEYS for kind in SECURE_PROTOCOLS)
        else:
            keys.add(key)
    for key in list(keys):
        for kind in SECURE_PROTOCOLS:
            if key.endswith(f"_{kind}") and not key.endswith(f"_sasl_{kind}"):
                keys.add(key[: -len(kind) - 1])
    for key in list(keys):
        if key.startswith("consume_1KiB"):
            keys.add(key.replace("consume_1KiB", "produce_1KiB_acksall"))
    return keys


def run_bench(bootstrap, label, mode, args, timeout=300, client_config=None):
    connection = ["--client-config", str(client_config)] if client_config else []
    argv = [str(BENCH_BIN), "--bootstrap", bootstrap, "--label", label, *connection, mode, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        return {"mode": mode, "label": label, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- limits

def iperf_loopback_mb_s(seconds, attempts=3):
    """Loopback TCP throughput by iperf3. A run that reports an error (the
    one-off server can miss the client's first connection) is retried with a
    fresh server."""
    error = None
    for _ in range(attempts):
        port = free_port()
        server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # A probe connection would use up the one-off server; give it
            # time to listen instead.
            time.sleep(0.5)
            deadline = time.time() + 5
            while True:
                client = subprocess.run(
                    ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                    capture_output=True, text=True)
                if client.returncode == 0 or time.time() > deadline:
                    break
                time.sleep(0.1)
            try:
                result = json.loads(client.stdout)
                return result["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
            except (ValueError, KeyError):
                error = client.stdout[-300:] or client.stderr[-300:]
        finally:
            server.kill()
            server.wait()
    raise RuntimeError(f"iperf3 failed {attempts} times: {error}")


def fio_write_mb_s(directory, size, fdatasync, run):
    """Sequential 1 MiB writes to a new file; without fdatasync this is the
    page-cache write rate, the bound of the broker's default flush policy.
    Files stay until every run is done (see `measure_limits`): a log appends
    to new pages, and pages freed a moment ago would be faster than those."""
    argv = ["fio", f"--name=seqwrite{'-sync' if fdatasync else ''}-{run}", f"--directory={directory}",
            "--rw=write", "--bs=1M",
            f"--size={size}", "--ioengine=psync", "--output-format=json"]
    if fdatasync:
        # One fdatasync per 1 MiB write: the durable-commit floor.
        argv.append("--fdatasync=1")
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["jobs"][0]["write"]["bw_bytes"] / 1e6


def loopback_rtt_ms(size=KIB, rounds=5000):
    """Round trip of `size` bytes over loopback TCP (Python on both ends):
    the floor for produce -> broker -> consume, which is two such hops."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def echo():
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while True:
                data = b""
                while len(data) < size:
                    chunk = conn.recv(size - len(data))
                    if not chunk:
                        return
                    data += chunk
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload, samples = b"x" * size, []
    for _ in range(rounds):
        start = time.perf_counter()
        client.sendall(payload)
        got = 0
        while got < size:
            got += len(client.recv(size - got))
        samples.append((time.perf_counter() - start) * 1000)
    client.close()
    listener.close()
    samples.sort()
    return {"p50_ms": samples[len(samples) // 2], "p99_ms": samples[int(len(samples) * 0.99)]}


def measure_limits(workdir, quick, runs, out):
    limits = {}
    if shutil.which("iperf3"):
        values = [iperf_loopback_mb_s(1 if quick else 3) for _ in range(runs)]
        limits["loopback_mb_s"] = values
    else:
        log("iperf3 not installed: no loopback limit")
    if shutil.which("fio"):
        limits["disk_write_mb_s"] = [fio_write_mb_s(workdir, "32M" if quick else "1G", False, run)
                                     for run in range(runs)]
        limits["disk_write_fdatasync_mb_s"] = [
            fio_write_mb_s(workdir, "16M" if quick else "256M", True, run) for run in range(runs)]
        for leftover in Path(workdir).glob("seqwrite*"):
            leftover.unlink()
    else:
        log("fio not installed: no disk limit")
    rtt = [loopback_rtt_ms(rounds=500 if quick else 5000) for _ in range(runs)]
    limits["loopback_rtt_1KiB_p50_ms"] = [r["p50_ms"] for r in rtt]
    limits["loopback_rtt_1KiB_p99_ms"] = [r["p99_ms"] for r in rtt]
    for key, values in limits.items():
        out({"kind": "limit", "name": key, "values": values})
    return {key: statistics.median(values) for key, values in limits.items()}, limits


# ------------------------------------------------------------ start-up

def gregor_startup(binary, runs):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_startup.py"),
                           "--bin", str(binary), "--runs", str(runs)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_startup(make_broker, runs):
    """The same measurement as scripts/bench_startup.py, for any broker:
    start to first accepted connection, then VmRSS after 2 s idle."""
    startups, rss = [], []
    for _ in range(runs):
        broker = make_broker().start()
        startups.append(broker.startup_ms)
        time.sleep(2)
        rss.append(proc_status(broker.proc.pid)["VmRSS"])
        broker.stop()
    return {"startup_ms_median": statistics.median(startups), "startup_ms_min": min(startups),
            "startup_ms_max": max(startups), "idle_rss_mb_median": statistics.median(rss),
            "idle_rss_mb_min": min(rss), "idle_rss_mb_max": max(rss)}


# ---------------------------------------------------------------- table

def spread(values, digits):
    if not values:
        return None
    fmt = f"{{:,.{digits}f}}"
    median = statistics.median(values)
    if len(values) == 1:
        return median, fmt.format(median)
    return median, f"{fmt.format(median)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke of each mode")
    parser.add_argument("--gregor-bin", default=str(ROOT / "target" / "release" / "gregor"))
    parser.add_argument("--static-bin", default=str(ROOT / "target" / "x86_64-unknown-linux-musl" / "release" / "gregor"),
                        help="the static musl build (as in the images), run as a third target if present")
    parser.add_argument("--baseline-bin", metavar="PATH",
                        help="an older gregor build in the second column instead of the static one "
                             "(an A/B of a change, measured in the same run)")
    parser.add_argument("--tansu-bin", default=os.environ.get("TANSU_BIN") or shutil.which("tansu")
                        or "/work/.peers/tansu/bin/tansu")
    parser.add_argument("--no-peer", action="store_true", help="gregor only")
    parser.add_argument("--no-limits", action="store_true", help="skip iperf3/fio")
    parser.add_argument("--no-sync", action="store_true",
                        help="don't sync(2) between runs (let write-back of earlier runs overlap)")
    parser.add_argument("--perf", metavar="FILE", help="perf record -g gregor during run 1 of produce 100 B")
    parser.add_argument("--only", metavar="KEYS",
                        help="comma-separated scenario keys (e.g. e2e_1KiB_10k_linger0) for a focused A/B; "
                             "`security` selects the SSL/SASL_SSL rows and their plaintext ones")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    if args.baseline_bin:
        args.static_bin = args.baseline_bin

    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    jsonl_path = results_dir / (f"{stamp}-quick.jsonl" if args.quick else f"{stamp}.jsonl")
    jsonl = open(jsonl_path, "w")

    def out(line):
        line.setdefault("suite", stamp)
        jsonl.write(json.dumps(line) + "\n")
        jsonl.flush()

    workdir = tempfile.mkdtemp(prefix="gregor-bench-")
    targets = ["gregor"]
    if args.static_bin and Path(args.static_bin).exists():
        targets.append("gregor-static")
    else:
        log(f"no static build at {args.static_bin}: its column stays empty")
    peer_note = None
    if not args.no_peer:
        if Path(args.tansu_bin).exists() or shutil.which(args.tansu_bin):
            targets.append("tansu")
        else:
            peer_note = f"Tansu not found at {args.tansu_bin}: peer columns empty"
            log(peer_note)
    out({"kind": "environment", "loadavg_before": os.getloadavg(), "gregor_bin": args.gregor_bin,
         "static_bin": args.static_bin if "gregor-static" in targets else None, "tansu_bin": args.tansu_bin if "tansu" in targets else None,
         "nproc": os.cpu_count(), "kernel": os.uname().release, "quick": args.quick, "runs": args.runs,
         "gregor_git": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                      capture_output=True, text=True).stdout.strip()})

    limits, _ = ({}, {}) if args.no_limits else measure_limits(workdir, args.quick, args.runs, out)

    brokers = {"gregor": gregor_broker(args.gregor_bin, workdir).start(),
               "gregor-durable": gregor_broker(args.gregor_bin, workdir, "gregor-durable",
                                               ["log.flush.interval.messages=1"]).start()}
    only = selected_keys(args.only)
    chosen = [s for s in scenarios(args.quick) if only is None or s[0] in only]
    client_configs = {}
    if any(kind in SECURE_PROTOCOLS for _, _, _, kind, _ in chosen):
        secure, client_configs = secure_gregor_brokers(args.gregor_bin, workdir)
        brokers.update(secure)
    if "gregor-static" in targets:
        brokers["gregor-static"] = gregor_broker(args.static_bin, workdir, "gregor-static").start()
        brokers["gregor-static-durable"] = gregor_broker(args.static_bin, workdir, "gregor-static-durable",
                                                         ["log.flush.interval.messages=1"]).start()
    if "tansu" in targets:
        try:
            brokers["tansu"] = tansu_broker(args.tansu_bin, workdir).start()
        except (RuntimeError, TimeoutError) as error:
            peer_note = f"Tansu did not start: {error} (log in {workdir}/tansu.log)"
            log(peer_note)
            targets.remove("tansu")

    samples = {}  # (scenario, target) -> list of result lines
    peak_rss = {t: 0.0 for t in brokers}
    try:
        for run in range(1, args.runs + 1):
            for key, title, mode, kind, bench_args in chosen:
                for target in targets:
                    if kind == "durable" and target == "tansu":
                        continue  # Tansu's memory engine has no durable commit.
                    if kind in SECURE_PROTOCOLS and target != "gregor":
                        continue  # Compared with plaintext gregor, not across builds or peers.
                    broker = brokers[target if kind == "default" else f"{target}-{kind}"]
                    topic_key = key.replace("consume_1KiB", "produce_1KiB_acksall")
                    topic = f"bench-{topic_key}-{run}"
                    if not args.no_sync:
                        # Write back the previous runs' dirty pages first, so
                        # each run pays only for its own write-back.
                        os.sync()
                    perf = None
                    if args.perf and target == "gregor" and run == 1 and key == "produce_100B_acks1":
                        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", args.perf,
                                                 "-p", str(broker.proc.pid)],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        time.sleep(0.5)
                    with Sampler(broker.proc.pid) as sampler:
                        line = run_bench(broker.bootstrap, target, mode, ["--topic", topic, *bench_args],
                                         client_config=client_configs.get(broker.name))
                    if perf:
                        perf.send_signal(signal.SIGINT)
                        perf.wait()
                    line.update({"kind": "run", "scenario": key, "target": target, "run": run,
                                 "broker": {"cpu_s": round(sampler.cpu, 3), "peak_rss_mb": round(sampler.peak_rss, 1),
                                            "peak_rss_anon_mb": round(sampler.peak_anon, 1),
                                            "vm_hwm_mb": round(sampler.status.get("VmHWM", 0), 1)}})
                    peak_rss[broker.name] = max(peak_rss[broker.name], sampler.peak_rss)
                    out(line)
                    samples.setdefault((key, target), []).append(line)
                    summary = line.get("msgs_per_s"), line.get("mb_per_s"), line.get("e2e_latency", {}).get("p50_ms")
                    log(f"run {run} {key} {target}: msgs/s={summary[0]} MB/s={summary[1]} e2e p50={summary[2]} "
                        f"{'ERROR ' + str(line['error']) if 'error' in line else ''}")
        hwm = {name: proc_status(b.proc.pid).get("VmHWM", 0) for name, b in brokers.items()}
    finally:
        for broker in brokers.values():
            broker.stop()

    startup = {"gregor": gregor_startup(args.gregor_bin, max(args.runs, 3))}
    if "gregor-static" in targets:
        startup["gregor-static"] = gregor_startup(args.static_bin, max(args.runs, 3))
    if "tansu" in targets:
        startup["tansu"] = peer_startup(lambda: tansu_broker(args.tansu_bin, workdir), max(args.runs, 3))
    for target, values in startup.items():
        out({"kind": "startup", "target": target, **values})
    out({"kind": "rss_under_load", "peak_rss_mb": peak_rss, "vm_hwm_mb": hwm})
    out({"kind": "environment_after", "loadavg_after": os.getloadavg()})

    table = render_table(samples, targets, limits, startup, peak_rss, hwm, args, peer_note)
    (results_dir / jsonl_path.name.replace(".jsonl", ".md")).write_text(table)
    print(table)
    log(f"raw lines: {jsonl_path}")
    shutil.rmtree(workdir, ignore_errors=True)


def render_table(samples, targets, limits, startup, peak_rss, hwm, args, peer_note):
    rows = []
    limits = dict(limits)  # the derived client-bound limits are added below
    loop = limits.get("loopback_mb_s")
    disk = limits.get("disk_write_mb_s")
    disk_sync = limits.get("disk_write_fdatasync_mb_s")
    rtt = limits.get("loopback_rtt_1KiB_p50_ms")

    def values(key, target, pick):
        got = []
        for line in samples.get((key, target), []):
            if "error" not in line:
                value = pick(line)
                if value is not None:
                    got.append(value)
        return got

    def add(title, key, pick, digits, limit=None, target_text="", met=None):
        g = spread(values(key, "gregor", pick), digits)
        st = spread(values(key, "gregor-static", pick), digits) if "gregor-static" in targets else None
        t = spread(values(key, "tansu", pick), digits) if "tansu" in targets else None
        g_median = g[0] if g else None
        t_median = t[0] if t else None
        met_text = "" if met is None or g_median is None else ("yes" if met(g_median, t_median) else "**no**")
        rows.append([title, g[1] if g else "failed", st[1] if st else "—", t[1] if t else "—",
                     ratio(g_median, t_median), ratio(g_median, limit), target_text, met_text])

    def client_cpu_per_gb(line):
        gb = line.get("messages", 0) * line.get("size", 0) / 1e9
        return line["client_cpu_s"] / gb if gb and "client_cpu_s" in line else None

    def client_bound_mb_s(key):
        """What this client alone allows on this machine: every core running
        librdkafka, at the CPU per GB it spent in gregor's runs."""
        per_gb = values(key, "gregor", client_cpu_per_gb)
        return (os.cpu_count() or 1) * 1000 / statistics.median(per_gb) if per_gb else None
    client_100 = client_bound_mb_s("produce_100B_acks1")
    client_1k = client_bound_mb_s("produce_1KiB_acksall")
    limits["client_bound_100B_mb_s"] = client_100
    limits["client_bound_1KiB_mb_s"] = client_1k

    def both_limits(*candidates):
        present = [c for c in candidates if c]
        return min(present) if present else None

    mb = lambda line: line.get("mb_per_s")
    msgs = lambda line: line.get("msgs_per_s")
    add("produce 100 B acks=1 — msg/s", "produce_100B_acks1", msgs, 0,
        limit=(both_limits(loop, disk, client_100) or 0) * 1e6 / 100 or None,
        target_text="≥ 2 000 000 and > Tansu",
        met=lambda g, t: g >= 2_000_000 and (t is None or g > t))
    add("produce 100 B acks=1 — p99 ack latency (ms)", "produce_100B_acks1",
        lambda l: l.get("ack_latency", {}).get("p99_ms"), 2)
    add("produce 1 KiB acks=all — MB/s", "produce_1KiB_acksall", mb, 1,
        limit=both_limits(loop, disk, client_1k), target_text="≥ 1 000 MB/s", met=lambda g, t: g >= 1000)
    add("produce 100 B acks=1, lz4 — msg/s", "produce_100B_acks1_lz4", msgs, 0)
    add("produce 1 KiB acks=all, lz4 — MB/s", "produce_1KiB_acksall_lz4", mb, 1)
    add("produce 1 KiB acks=all, flush every message (group commit) — MB/s",
        "produce_1KiB_acksall_durable", mb, 1, limit=both_limits(loop, disk_sync, client_1k),
        target_text="≥ 700 MB/s", met=lambda g, t: g >= 700)
    add("consume 1 KiB from the log — MB/s", "consume_1KiB", mb, 1, limit=loop,
        target_text="≥ 1 000 MB/s", met=lambda g, t: g >= 1000)
    for key, title, p50_target, p99_target in [
        ("e2e_1KiB_10k_linger0", "e2e 1 KiB @ 10k/s linger.ms=0", 0.3, 1.0),
        ("e2e_1KiB_10k_default", "e2e 1 KiB @ 10k/s default linger", None, None),
        ("e2e_100B_50k", "e2e 100 B @ 50k/s", None, None),
    ]:
        for pct, label, limit_value, goal in [("p50_ms", "p50", rtt, p50_target), ("p99_ms", "p99", None, p99_target),
                                              ("p999_ms", "p99.9", None, None), ("max_ms", "max", None, None)]:
            add(f"{title} — {label} (ms)", key, lambda l, p=pct: l.get("e2e_latency", {}).get(p), 3,
                limit=limit_value, target_text=f"≤ {goal} ms" if goal else "",
                met=(lambda g, t, goal=goal: g <= goal) if goal else None)
    for key, title in [("produce_100B_acks1", "produce 100 B"), ("produce_1KiB_acksall", "produce 1 KiB acks=all"),
                       ("produce_100B_acks1_lz4", "produce 100 B lz4"),
                       ("produce_1KiB_acksall_lz4", "produce 1 KiB acks=all lz4"),
                       ("consume_1KiB", "consume 1 KiB")]:
        def cpu_per_gb(line):
            gb = line.get("messages", 0) * line.get("size", 0) / 1e9
            return line["broker"]["cpu_s"] / gb if gb else None
        add(f"broker CPU s per GB, {title}", key, cpu_per_gb, 2)

    # When the client burns more CPU than the broker, the row measures librdkafka.
    add("client (librdkafka) CPU s per GB, produce 100 B", "produce_100B_acks1", client_cpu_per_gb, 2)
    add("client (librdkafka) CPU s per GB, produce 1 KiB acks=all", "produce_1KiB_acksall", client_cpu_per_gb, 2)

    g_start, st_start, t_start = (startup.get(t, {}) for t in ("gregor", "gregor-static", "tansu"))

    def startup_row(title, median_key, min_key, max_key, digits, target_text, goal):
        def fmt(d):
            if not d:
                return "—"
            low = d.get(min_key)
            return (f"{d[median_key]:.{digits}f}" + (f" ({low:.{digits}f}–{d[max_key]:.{digits}f})" if low is not None else f" (max {d[max_key]:.{digits}f})"))
        g = g_start.get(median_key)
        t = t_start.get(median_key)
        rows.append([title, fmt(g_start), fmt(st_start), fmt(t_start), ratio(g, t), "—", target_text,
                     "" if g is None else ("yes" if g <= goal else "**no**")])

    startup_row("start-up to first accepted connection (ms)", "startup_ms_median", "startup_ms_min",
                "startup_ms_max", 1, "≤ 10 ms", 10)
    startup_row("idle RSS (MB)", "idle_rss_mb_median", "idle_rss_mb_min", "idle_rss_mb_max", 1, "≤ 16 MB", 16)
    g_peak, st_peak, t_peak = (peak_rss.get(t) for t in ("gregor", "gregor-static", "tansu"))
    rows.append(["peak RSS under load, sampled every 50 ms (MB)", f"{g_peak:.1f} (VmHWM {hwm.get('gregor', 0):.1f})",
                 f"{st_peak:.1f} (VmHWM {hwm.get('gregor-static', 0):.1f})" if st_peak else "—",
                 f"{t_peak:.1f} (VmHWM {hwm.get('tansu', 0):.1f})" if t_peak else "—", ratio(g_peak, t_peak), "—",
                 "bounded (≤ 256 MB while GBs are written)",
                 "yes" if g_peak and hwm.get("gregor", 0) <= 256 else "**no**"])
    size_mb, static_mb = g_start.get("binary_mb"), st_start.get("binary_mb")
    if size_mb is not None:
        rows.append(["binary size (MB)", f"{size_mb:.1f}", f"{static_mb:.1f}" if static_mb else "—", "—", "—", "—",
                     "static ≤ 20 MB", "yes" if (static_mb or size_mb) <= 20 else "**no**"])

    second = "gregor baseline" if args.baseline_bin else "gregor static musl"
    header = ["scenario", "gregor median (min–max)", second, "Tansu median (min–max)", "gregor/Tansu",
              "gregor/limit", "target (issue 5)", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]

    def limit_text(name, unit, digits=0):
        v = limits.get(name)
        return f"{v:,.{digits}f} {unit}" if v is not None else "not measured"
    notes = [
        "",
        f"{args.runs} run(s) per scenario{' (quick smoke sizes)' if args.quick else ''}, interleaved "
        + (f"gregor (glibc build) / gregor baseline ({args.baseline_bin}) / Tansu; median (min–max)."
         if args.baseline_bin else
         "gregor (glibc build) / gregor static (musl, as in the images) / Tansu; median (min–max)."),
        f"Machine limits (median): loopback TCP {limit_text('loopback_mb_s', 'MB/s')} (iperf3), "
        f"sequential write to a new file {limit_text('disk_write_mb_s', 'MB/s')}, with fdatasync per MiB "
        f"{limit_text('disk_write_fdatasync_mb_s', 'MB/s')} (fio), loopback 1 KiB round trip p50 "
        f"{limit_text('loopback_rtt_1KiB_p50_ms', 'ms', 3)} (Python echo); client-bound: "
        f"{limit_text('client_bound_100B_mb_s', 'MB/s')} at 100 B, {limit_text('client_bound_1KiB_mb_s', 'MB/s')} "
        f"at 1 KiB ({os.cpu_count()} cores / librdkafka's CPU seconds per GB, with no CPU left for any broker).",
        "gregor/limit: throughput against min(loopback, disk, client-bound) (the fdatasync figure for the "
        "flush-every-message row; loopback alone for consume); e2e p50 against one loopback round trip. Tansu runs "
        "its memory engine (no disk, no durable commit row).",
    ]
    if peer_note:
        notes.append(f"Peer: {peer_note}.")
    return "\n".join(lines + notes + security_table(samples, values)) + "\n"


def security_table(samples, values):
    """The security rows: gregor over SSL and SASL_SSL (SCRAM-SHA-512) beside
    the plaintext gregor of the same run, as a ratio; empty when none ran."""
    metrics = [
        ("produce_1KiB_acksall", "produce 1 KiB acks=all — MB/s", lambda l: l.get("mb_per_s"), 1),
        ("consume_1KiB", "consume 1 KiB from the log — MB/s", lambda l: l.get("mb_per_s"), 1),
        ("e2e_1KiB_10k_linger0", "e2e 1 KiB @ 10k/s linger.ms=0 — p50 (ms)",
         lambda l: l.get("e2e_latency", {}).get("p50_ms"), 3),
        ("e2e_1KiB_10k_linger0", "e2e 1 KiB @ 10k/s linger.ms=0 — p99 (ms)",
         lambda l: l.get("e2e_latency", {}).get("p99_ms"), 3),
    ]
    rows = []
    for base, title, pick, digits in metrics:
        plain = spread(values(base, "gregor", pick), digits)
        for kind, protocol in SECURE_PROTOCOLS.items():
            secure = spread(values(f"{base}_{kind}", "gregor", pick), digits)
            if (f"{base}_{kind}", "gregor") not in samples:
                continue  # not selected in this run
            rows.append([f"{title} over {protocol}", secure[1] if secure else "failed",
                         plain[1] if plain else "—",
                         ratio(secure[0] if secure else None, plain[0] if plain else None)])
    if not rows:
        return []
    header = ["scenario", "gregor median (min–max)", "plaintext gregor, same run", "ratio to plaintext"]
    return ["", "Security: the same scenarios over an SSL listener and a SASL_SSL one (SCRAM-SHA-512), "
            "gregor only (the peer and static columns do not apply).", "",
            "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
            "", "Ratio: secure / plaintext; below 1 is slower for MB/s, above 1 is slower for latency."]


if __name__ == "__main__":
    main()
