"""The chaos harness's judge: pure checks over a history of operations.

A history is a list of operations (one JSON object per line on disk), as
Jepsen records them: a client logs `invoke` before it acts and `ok`, `fail`
or `info` (indeterminate: it may or may not have happened) when it learns
the outcome. Fields:

    time      seconds (wall clock, one host: comparable across processes)
    process   who did it ("ck-producer-0", "nemesis", ...)
    type      invoke | ok | fail | info
    f         send | poll | list_offsets | commit | committed | seek | fault | heal
    topic, partition
    value     send: the unique value written
    offset    send ok: where it landed; list_offsets ok: the end offset;
              commit / committed ok: the group's offset; seek: the position
    records   poll ok: [[offset, value], ...] for one partition
    mode      poll: "assign" or "subscribe"
    group     commit / committed
    final     poll ok: part of the read after healing

Every check returns a `CheckResult`: how many things it looked at and the
anomalies it found, each with the offending excerpt of the history. A check
sees only what the history says; it never talks to a broker.
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable

EXCERPT_LIMIT = 8


@dataclass
class Anomaly:
    check: str
    partition: str
    message: str
    excerpt: list[dict] = field(default_factory=list)
    focus: list[int] = field(default_factory=list)  # offsets it is about: long polls are trimmed to them

    def to_dict(self):
        return {"check": self.check, "partition": self.partition, "message": self.message,
                "focus": self.focus, "excerpt": self.excerpt}


@dataclass
class CheckResult:
    name: str
    description: str
    checked: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def ok(self):
        return not self.anomalies

    def flag(self, partition, message, *ops, focus=()):
        excerpt, seen = [], set()
        for op in ops:
            if op is not None and id(op) not in seen:
                seen.add(id(op))
                excerpt.append(op)
        focus = [focus] if isinstance(focus, int) else list(focus)
        self.anomalies.append(Anomaly(self.name, partition, message, excerpt[:EXCERPT_LIMIT], focus))


def load_history(path) -> list[dict]:
    """Reads a JSONL history; each operation gets its line number as `index`."""
    ops = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                op = json.loads(line)
                op["index"] = len(ops)
                ops.append(op)
    return ops


def index_history(ops: Iterable[dict]) -> list[dict]:
    """Gives in-memory operations (tests, the runner) their position as `index`."""
    out = []
    for i, op in enumerate(ops):
        op = dict(op)
        op.setdefault("index", i)
        out.append(op)
    return out


def key(op) -> str:
    return f"{op.get('topic', '')}/{op.get('partition')}"


def by_partition(ops):
    groups: dict[str, list[dict]] = {}
    for op in ops:
        groups.setdefault(key(op), []).append(op)
    return groups


def completions(ops, f):
    """Pairs each completion of `f` with its invocation (the process's
    latest invoke of `f`; clients here have several sends in flight, so
    sends carry their value and pair by it)."""
    pending: dict[tuple, dict] = {}
    pairs = []
    for op in ops:
        if op.get("f") != f:
            continue
        ident = (op["process"], key(op), op.get("value") if f == "send" else None)
        if op["type"] == "invoke":
            pending[ident] = op
        else:
            pairs.append((pending.pop(ident, None), op))
    return pairs


def sends(ops):
    """Acknowledged sends as (invoke, ok) pairs; an ok with no invoke stands for both."""
    return [(inv or ok, ok) for inv, ok in completions(ops, "send") if ok["type"] == "ok"]


def reads(ops, final=None):
    """(offset, value, op) for every record returned by an ok poll."""
    out = []
    for op in ops:
        if op.get("f") == "poll" and op["type"] == "ok":
            if final is not None and bool(op.get("final")) != final:
                continue
            for offset, value in op.get("records", []):
                out.append((offset, value, op))
    return out


# ---------------------------------------------------------------- the checks


def check_one_value_per_offset(ops) -> CheckResult:
    r = CheckResult("one_value_per_offset", "every read of an offset returns the same value")
    for part, pops in by_partition(ops).items():
        seen: dict[int, tuple] = {}
        for offset, value, op in reads(pops):
            r.checked += 1
            first = seen.setdefault(offset, (value, op))
            if first[0] != value:
                r.flag(part, f"offset {offset} read as {first[0]!r} and as {value!r}", first[1], op, focus=offset)
    return r


def check_no_duplicates(ops) -> CheckResult:
    r = CheckResult("no_duplicates", "no value is stored at two offsets")
    for part, pops in by_partition(ops).items():
        where: dict[str, tuple] = {}
        flagged = set()
        for offset, value, op in reads(pops):
            r.checked += 1
            first = where.setdefault(value, (offset, op))
            if first[0] != offset and value not in flagged:
                flagged.add(value)
                r.flag(part, f"value {value!r} at offsets {first[0]} and {offset}", first[1], op,
                       focus=(first[0], offset))
    return r


def final_contents(ops):
    """offset -> value according to the final reads, per partition."""
    out: dict[str, dict[int, str]] = {}
    for offset, value, op in reads(ops, final=True):
        out.setdefault(key(op), {}).setdefault(offset, value)
    return out


def check_no_lost_writes(ops) -> CheckResult:
    r = CheckResult("no_lost_writes", "every acknowledged send is in the final read at its offset")
    final = final_contents(ops)
    for part, pops in by_partition(ops).items():
        contents = final.get(part, {})
        located = {v: o for o, v in contents.items()}
        for inv, ok in sends(pops):
            r.checked += 1
            offset, value = ok["offset"], ok["value"]
            if contents.get(offset) == value:
                continue
            if value in located:
                msg = f"{value!r} acknowledged at offset {offset} but read at {located[value]}"
            elif offset in contents:
                msg = f"{value!r} acknowledged at offset {offset}, which holds {contents[offset]!r}"
            else:
                end = max(contents) + 1 if contents else 0
                msg = f"{value!r} acknowledged at offset {offset}, final read ends at {end}"
            r.flag(part, msg, inv, ok, focus=offset)
    return r


def check_no_vanished_reads(ops) -> CheckResult:
    r = CheckResult("no_vanished_reads", "whatever a consumer read is still at its offset in the final read")
    final = final_contents(ops)
    for part, pops in by_partition(ops).items():
        contents = final.get(part, {})
        reported = set()
        for offset, value, op in reads(pops, final=False):
            r.checked += 1
            if contents.get(offset) != value and (offset, value) not in reported:
                reported.add((offset, value))
                now = contents.get(offset, "nothing")
                r.flag(part, f"{value!r} read at offset {offset}; the final read has {now!r} there", op,
                       focus=offset)
    return r


def check_failed_writes_absent(ops) -> CheckResult:
    r = CheckResult("failed_writes_absent", "a send that definitely failed is never read")
    failed = {}
    for inv, done in completions(ops, "send"):
        if done["type"] == "fail":
            failed[(key(done), done["value"])] = done
    r.checked = len(failed)
    for offset, value, op in reads(ops):
        bad = failed.pop((key(op), value), None)
        if bad is not None:
            r.flag(key(op), f"{value!r} failed but was read at offset {offset}", bad, op, focus=offset)
    return r


def check_assign_polls_contiguous(ops) -> CheckResult:
    r = CheckResult("assign_polls_contiguous",
                    "an assigned consumer reads each partition at consecutive offsets")
    expected: dict[tuple, tuple] = {}
    for op in ops:
        if op["type"] != "ok":
            continue
        ident = (op["process"], key(op))
        if op.get("f") == "seek":
            expected[ident] = (op["offset"], op)
        elif op.get("f") == "poll" and op.get("mode") == "assign":
            for offset, _ in op.get("records", []):
                r.checked += 1
                want, prev = expected.get(ident, (None, None))
                if want is not None and offset != want:
                    r.flag(key(op), f"{op['process']} read offset {offset} after {want - 1}", prev, op,
                           focus=offset)
                expected[ident] = (offset + 1, op)
    return r


def check_producer_order(ops) -> CheckResult:
    r = CheckResult("producer_order", "one producer's sends land in the order it sent them")
    for part, pops in by_partition(ops).items():
        last: dict[str, tuple] = {}
        for inv, ok in sorted(sends(pops), key=lambda p: p[0]["index"]):
            r.checked += 1
            prev = last.get(ok["process"])
            if prev is not None and ok["offset"] <= prev[1]["offset"]:
                r.flag(part, f"{ok['process']} sent {ok['value']!r} after {prev[1]['value']!r} "
                       f"but it landed at {ok['offset']} <= {prev[1]['offset']}", prev[0], prev[1], inv, ok)
            last[ok["process"]] = (inv, ok)
    return r


def realtime_sweep(pairs, same_or_later: Callable[[dict, dict], bool], r: CheckResult, part, what):
    """For ops A, B of `pairs` ((invoke, ok) each): when A completed before B
    was invoked, `same_or_later(A.ok, B.ok)` must hold. Sorted by completion,
    only the largest offset completed so far matters."""
    by_done = sorted(pairs, key=lambda p: p[1]["time"])
    done_times = [p[1]["time"] for p in by_done]
    best = []  # best[i]: the pair with the highest offset among by_done[:i+1]
    for pair in by_done:
        if not best or pair[1]["offset"] > best[-1][1]["offset"]:
            best.append(pair)
        else:
            best.append(best[-1])
    for inv, ok in pairs:
        r.checked += 1
        n = bisect.bisect_left(done_times, inv["time"])
        if n == 0:
            continue
        a_inv, a_ok = best[n - 1]
        if not same_or_later(a_ok, ok):
            r.flag(part, what(a_ok, ok), a_inv, a_ok, inv, ok)


def check_realtime_order(ops) -> CheckResult:
    r = CheckResult("realtime_order",
                    "a send acknowledged before another was invoked has the lower offset")
    for part, pops in by_partition(ops).items():
        realtime_sweep(sends(pops), lambda a, b: a["offset"] < b["offset"], r, part,
                       lambda a, b: f"{a['value']!r} was acknowledged at {a['offset']} before "
                                    f"{b['value']!r} was sent, which landed at {b['offset']}")
    return r


def check_list_offsets_monotonic(ops, acks_all=True) -> CheckResult:
    """The end offset ListOffsets returns is the high watermark. With
    acks=all an acknowledged record is below it; with acks=1 the leader
    acknowledges before replication, so only monotonicity is checked."""
    covers = " and covers every send acknowledged before" if acks_all else ""
    r = CheckResult("list_offsets_monotonic", "the end offset never goes backwards" + covers)
    for part, pops in by_partition(ops).items():
        probes = [(inv or ok, ok) for inv, ok in completions(pops, "list_offsets") if ok["type"] == "ok"]
        realtime_sweep(probes, lambda a, b: b["offset"] >= a["offset"], r, part,
                       lambda a, b: f"end offset {b['offset']} after {a['offset']} was seen")
        if not acks_all:
            continue
        # An end offset read after a send was acknowledged lies above it.
        acked = sorted(sends(pops), key=lambda p: p[1]["time"])
        times = [ok["time"] for _, ok in acked]
        highest, best = [], None
        for pair in acked:
            if best is None or pair[1]["offset"] > best[1]["offset"]:
                best = pair
            highest.append(best)
        for inv, ok in probes:
            n = bisect.bisect_left(times, inv["time"])
            if n and ok["offset"] <= highest[n - 1][1]["offset"]:
                a_inv, a_ok = highest[n - 1]
                r.flag(part, f"end offset {ok['offset']} though {a_ok['value']!r} was acknowledged "
                             f"at offset {a_ok['offset']} before the probe", a_inv, a_ok, inv, ok)
    return r


def check_commits_monotonic(ops) -> CheckResult:
    r = CheckResult("commits_monotonic",
                    "a group's committed offset never goes backwards (commits and reads of it)")
    for part, pops in by_partition(ops).items():
        pairs = [(inv or ok, ok) for f in ("commit", "committed")
                 for inv, ok in completions(pops, f) if ok["type"] == "ok" and ok.get("offset") is not None]
        groups: dict[str, list] = {}
        for pair in pairs:
            groups.setdefault(pair[1].get("group", ""), []).append(pair)
        for group, gpairs in groups.items():
            realtime_sweep(gpairs, lambda a, b: b["offset"] >= a["offset"], r, f"{part} group {group}",
                           lambda a, b: f"committed offset {b['offset']} ({b['f']}) after {a['offset']} ({a['f']})")
    return r


def last_heal(ops):
    """When the last fault healed (the first operation's time without faults)."""
    heals = [op["time"] for op in ops if op.get("process") == "nemesis" and op.get("f") == "heal"]
    if heals:
        return max(heals)
    return min((op["time"] for op in ops), default=0.0)


def check_liveness(ops, window_s: float) -> CheckResult:
    r = CheckResult("liveness",
                    f"within {window_s:g} s of the last heal a send succeeds, and every acknowledged "
                    f"value is read within {window_s:g} s of the later of its ack and the last heal")
    healed = last_heal(ops)
    invoked_after = [op for op in ops if op.get("f") == "send" and op["type"] == "invoke" and op["time"] >= healed]
    acked_after = sorted((ok for _, ok in sends(ops) if ok["time"] >= healed), key=lambda o: o["time"])
    r.checked += 1
    if invoked_after and (not acked_after or acked_after[0]["time"] > healed + window_s):
        when = f"{acked_after[0]['time'] - healed:.1f} s" if acked_after else "never"
        r.flag("*", f"first acknowledged send after the last heal came {when} after it",
               *(invoked_after[:1] + acked_after[:1]))
    first_read = {}
    for offset, value, op in reads(ops):
        first_read.setdefault((key(op), value), op)
    for _, ok in sends(ops):
        r.checked += 1
        deadline = max(ok["time"], healed) + window_s
        read = first_read.get((key(ok), ok["value"]))
        if read is None or read["time"] > deadline:
            late = "never read" if read is None else f"first read {read['time'] - deadline:.1f} s past the deadline"
            r.flag(key(ok), f"{ok['value']!r} acknowledged at offset {ok['offset']}: {late}", ok, read)
    return r


def fault_windows(ops):
    """(start, end) of every fault, from the nemesis's fault and heal operations."""
    windows, open_at = [], {}
    for op in ops:
        if op.get("process") != "nemesis":
            continue
        ident = (op.get("fault"), op.get("node"))
        if op.get("f") == "fault":
            open_at[ident] = op["time"]
        elif op.get("f") == "heal" and ident in open_at:
            windows.append((open_at.pop(ident), op["time"]))
    end = max((op["time"] for op in ops), default=0.0)
    return windows + [(start, end) for start in open_at.values()]


def longest_quiet_stretch(start, end, windows):
    """The longest part of (start, end) that no fault window covers."""
    longest, t = 0.0, start
    for a, b in sorted(windows):
        if b <= t or a >= end:
            continue
        longest = max(longest, a - t)
        t = max(t, b)
    return max(longest, end - t)


def check_consumer_progress(ops, window_s: float) -> CheckResult:
    """A consumer that reads nothing for longer than the window while no
    fault is active and sends are acknowledged is stuck. Stretches broken
    up by faults do not add up: a group rejoin takes seconds, and faults
    closer together than that may keep a group consumer out indefinitely."""
    r = CheckResult("consumer_progress",
                    f"no consumer goes more than {window_s:g} s without a fault and without reading "
                    f"while sends are acknowledged")
    windows = fault_windows(ops)
    ack_times = sorted(ok["time"] for _, ok in sends(ops))
    last_ack = ack_times[-1] if ack_times else None
    polls: dict[str, list[dict]] = {}
    for op in ops:
        if op.get("f") == "poll" and op["type"] == "ok" and not op.get("final") and op.get("records"):
            polls.setdefault(op["process"], []).append(op)
    for process, reads_ in polls.items():
        marks = reads_ + [None]
        for prev, nxt in zip(marks, marks[1:]):
            r.checked += 1
            start = prev["time"]
            end = nxt["time"] if nxt else last_ack
            if end is None or end <= start:
                continue
            quiet = longest_quiet_stretch(start, end, windows)
            acked = bisect.bisect_right(ack_times, end) - bisect.bisect_right(ack_times, start)
            if quiet > window_s and acked:
                what = f"until its next read at +{end - start:.1f} s" if nxt else \
                    f"until the last acknowledged send at +{end - start:.1f} s (never again)"
                r.flag("*", f"{process} read nothing for {quiet:.1f} s without a fault "
                       f"({what}) while {acked} sends were acknowledged", prev, nxt)
    return r


CHECKS = [
    check_one_value_per_offset,
    check_no_duplicates,
    check_no_lost_writes,
    check_no_vanished_reads,
    check_failed_writes_absent,
    check_assign_polls_contiguous,
    check_producer_order,
    check_realtime_order,
    check_list_offsets_monotonic,
    check_commits_monotonic,
]


def check_all(ops, liveness_window_s: float = 30.0, acks_all: bool = True) -> list[CheckResult]:
    """Every check; `acks_all`: the producers used acks=all."""
    ops = index_history(ops)
    results = [check_list_offsets_monotonic(ops, acks_all) if check is check_list_offsets_monotonic
               else check(ops) for check in CHECKS]
    return results + [check_liveness(ops, liveness_window_s), check_consumer_progress(ops, liveness_window_s)]
