"""The checker on synthetic histories: one good history passes every check,
and each bad one is caught by the check made for it (and only reported as
what it is)."""
import pytest

from checker import check_all, index_history, CHECKS, check_liveness

T = "t"


class History:
    """Builds a history with a clock that ticks by 1 s per operation."""

    def __init__(self):
        self.ops = []
        self.now = 0.0

    def op(self, **fields):
        self.now += 1
        fields.setdefault("time", self.now)
        fields.setdefault("topic", T)
        self.ops.append(fields)
        return self

    def invoke_send(self, process, value, partition=0):
        return self.op(process=process, type="invoke", f="send", partition=partition, value=value)

    def ack(self, process, value, offset, partition=0):
        return self.op(process=process, type="ok", f="send", partition=partition, value=value, offset=offset)

    def send(self, process, value, offset, partition=0):
        return self.invoke_send(process, value, partition).ack(process, value, offset, partition)

    def poll(self, process, records, partition=0, mode="assign", final=False):
        return self.op(process=process, type="ok", f="poll", partition=partition, mode=mode,
                       records=[list(r) for r in records], final=final)

    def seek(self, process, offset, partition=0):
        return self.op(process=process, type="ok", f="seek", partition=partition, offset=offset)

    def probe(self, process, end, partition=0):
        self.op(process=process, type="invoke", f="list_offsets", partition=partition)
        return self.op(process=process, type="ok", f="list_offsets", partition=partition, offset=end)

    def commit(self, process, offset, group="g", partition=0, f="commit"):
        self.op(process=process, type="invoke", f=f, partition=partition, group=group)
        return self.op(process=process, type="ok", f=f, partition=partition, group=group, offset=offset)

    def fault(self, name):
        self.op(process="nemesis", type="info", f="fault", fault=name, topic=None, partition=None)
        return self.op(process="nemesis", type="info", f="heal", fault=name, topic=None, partition=None)


def good_history():
    h = History()
    h.seek("c", 0).probe("lo", 0)
    h.send("p1", "a", 0).send("p2", "b", 1)
    h.poll("c", [(0, "a"), (1, "b")])
    h.fault("kill")
    h.invoke_send("p1", "c").invoke_send("p2", "d")
    h.ack("p2", "d", 2).ack("p1", "c", 3)
    h.op(process="p2", type="invoke", f="send", partition=0, value="e")
    h.op(process="p2", type="info", f="send", partition=0, value="e", error="timed out")
    h.probe("lo", 4)
    h.poll("c", [(2, "d"), (3, "c")])
    h.commit("s", 2).commit("s", 4).commit("s", 4, f="committed")
    h.poll("s", [(0, "a"), (1, "b"), (2, "d"), (3, "c")], mode="subscribe")
    h.poll("final", [(0, "a"), (1, "b"), (2, "d"), (3, "c")], final=True)
    return h.ops


def results(ops, window=30.0):
    return {r.name: r for r in check_all(ops, liveness_window_s=window)}


def failing(ops, window=30.0):
    return {name for name, r in results(ops, window).items() if not r.ok}


def test_a_good_history_passes_every_check_and_counts_what_it_checked():
    res = results(good_history())
    assert all(r.ok for r in res.values()), {n: [a.message for a in r.anomalies] for n, r in res.items()}
    assert len(res) == len(CHECKS) + 2
    for name, r in res.items():
        if name != "failed_writes_absent":
            assert r.checked > 0, name


def test_two_values_at_one_offset():
    h = History()
    h.send("p", "a", 0).poll("c", [(0, "a")]).poll("c2", [(0, "x")]).poll("f", [(0, "a")], final=True)
    res = results(h.ops)
    assert not res["one_value_per_offset"].ok
    anomaly = res["one_value_per_offset"].anomalies[0]
    assert "'a'" in anomaly.message and "'x'" in anomaly.message
    assert [op["process"] for op in anomaly.excerpt] == ["c", "c2"]


def test_a_duplicate_is_one_value_at_two_offsets():
    h = History()
    h.send("p", "a", 0).send("p", "b", 1)
    h.poll("f", [(0, "a"), (1, "b"), (2, "a")], final=True)
    res = results(h.ops)
    assert failing(h.ops) == {"no_duplicates"}
    assert res["no_duplicates"].anomalies[0].message == "value 'a' at offsets 0 and 2"


def test_a_lost_acknowledged_write():
    h = History()
    h.send("p", "a", 0).send("p", "b", 1).poll("f", [(0, "a")], final=True)
    res = results(h.ops)
    assert "no_lost_writes" in failing(h.ops)
    assert "'b'" in res["no_lost_writes"].anomalies[0].message
    # the excerpt is the send's invoke and ok
    assert [op["type"] for op in res["no_lost_writes"].anomalies[0].excerpt] == ["invoke", "ok"]


def test_an_acknowledged_write_overwritten_by_another_value():
    h = History()
    h.send("p", "a", 0).op(process="q", type="invoke", f="send", partition=0, value="z")
    h.poll("f", [(0, "z")], final=True)
    assert "no_lost_writes" in failing(h.ops)


def test_a_write_acknowledged_at_one_offset_but_stored_at_another():
    h = History()
    h.send("p", "a", 5).poll("f", [(0, "a")], final=True)
    res = results(h.ops)
    assert "read at 0" in res["no_lost_writes"].anomalies[0].message


def test_an_indeterminate_send_may_be_missing():
    h = History()
    h.invoke_send("p", "a").op(process="p", type="info", f="send", partition=0, value="a")
    h.send("p", "b", 0).poll("f", [(0, "b")], final=True)
    assert failing(h.ops) == set()


def test_a_read_that_vanished_from_the_log():
    h = History()
    h.invoke_send("p", "a").poll("c", [(0, "a")]).poll("f", [], final=True)
    res = results(h.ops)
    assert "no_vanished_reads" in failing(h.ops)
    assert "nothing" in res["no_vanished_reads"].anomalies[0].message


def test_a_definitely_failed_send_that_is_read():
    h = History()
    h.invoke_send("p", "a").op(process="p", type="fail", f="send", partition=0, value="a")
    h.send("p", "b", 1).poll("f", [(0, "a"), (1, "b")], final=True)
    assert failing(h.ops) == {"failed_writes_absent"}


def test_an_assigned_consumer_that_skips_an_offset():
    h = History()
    h.send("p", "a", 0).send("p", "b", 1).send("p", "c", 2)
    h.seek("c", 0).poll("c", [(0, "a")]).poll("c", [(2, "c")])
    h.poll("f", [(0, "a"), (1, "b"), (2, "c")], final=True)
    assert failing(h.ops) == {"assign_polls_contiguous"}


def test_an_assigned_consumer_that_goes_back_without_a_seek():
    h = History()
    h.send("p", "a", 0).send("p", "b", 1)
    h.poll("c", [(0, "a"), (1, "b")]).poll("c", [(0, "a")])
    h.poll("f", [(0, "a"), (1, "b")], final=True)
    assert failing(h.ops) == {"assign_polls_contiguous"}


def test_a_seek_resets_the_expected_offset_and_subscribe_polls_are_not_held_to_it():
    h = History()
    h.send("p", "a", 0).send("p", "b", 1)
    h.poll("c", [(0, "a"), (1, "b")]).seek("c", 0).poll("c", [(0, "a")])
    h.poll("s", [(1, "b")], mode="subscribe").poll("s", [(0, "a")], mode="subscribe")
    h.poll("f", [(0, "a"), (1, "b")], final=True)
    assert failing(h.ops) == set()


def test_one_producers_sends_reordered():
    h = History()
    h.invoke_send("p", "a").invoke_send("p", "b").ack("p", "b", 0).ack("p", "a", 1)
    h.poll("f", [(0, "b"), (1, "a")], final=True)
    res = results(h.ops)
    assert failing(h.ops) == {"producer_order"}
    assert len(res["producer_order"].anomalies[0].excerpt) == 4


def test_concurrent_sends_of_two_producers_may_land_in_either_order():
    h = History()
    h.invoke_send("p", "a").invoke_send("q", "b").ack("q", "b", 0).ack("p", "a", 1)
    h.poll("f", [(0, "b"), (1, "a")], final=True)
    assert failing(h.ops) == set()


def test_a_send_acknowledged_before_another_was_sent_must_land_first():
    h = History()
    h.send("p", "a", 1).send("q", "b", 0)
    h.poll("f", [(0, "b"), (1, "a")], final=True)
    res = results(h.ops)
    assert failing(h.ops) == {"realtime_order"}
    assert "'a' was acknowledged at 1 before 'b' was sent" in res["realtime_order"].anomalies[0].message


def test_partitions_are_ordered_independently():
    h = History()
    h.send("p", "a", 5, partition=0).send("q", "b", 0, partition=1)
    h.poll("f", [(5, "a")], partition=0, final=True).poll("f", [(0, "b")], partition=1, final=True)
    assert failing(h.ops) == set()


def test_list_offsets_going_backwards():
    h = History()
    h.probe("lo", 5).probe("lo2", 3)
    assert failing(h.ops) == {"list_offsets_monotonic"}


def test_list_offsets_below_an_acknowledged_send():
    h = History()
    h.send("p", "a", 0).send("p", "b", 1).probe("lo", 1)
    h.poll("f", [(0, "a"), (1, "b")], final=True)
    res = results(h.ops)
    assert failing(h.ops) == {"list_offsets_monotonic"}
    assert "'b' was acknowledged at offset 1" in res["list_offsets_monotonic"].anomalies[0].message


def test_with_acks_1_the_end_offset_may_lag_an_acknowledgement():
    h = History()
    h.send("p", "a", 0).send("p", "b", 1).probe("lo", 1)
    h.poll("f", [(0, "a"), (1, "b")], final=True)
    assert {r.name for r in check_all(h.ops, acks_all=False) if not r.ok} == set()
    h.probe("lo", 0)
    assert {r.name for r in check_all(h.ops, acks_all=False) if not r.ok} == {"list_offsets_monotonic"}


def test_overlapping_probes_may_disagree():
    h = History()
    h.op(process="a", type="invoke", f="list_offsets", partition=0)
    h.op(process="b", type="invoke", f="list_offsets", partition=0)
    h.op(process="a", type="ok", f="list_offsets", partition=0, offset=5)
    h.op(process="b", type="ok", f="list_offsets", partition=0, offset=3)
    assert failing(h.ops) == set()


def test_a_commit_going_backwards():
    h = History()
    h.commit("s", 5).commit("s", 3)
    assert failing(h.ops) == {"commits_monotonic"}


def test_a_committed_offset_read_below_an_acknowledged_commit():
    h = History()
    h.commit("s", 5).commit("prober", 0, f="committed")
    res = results(h.ops)
    assert failing(h.ops) == {"commits_monotonic"}
    assert "committed offset 0 (committed) after 5 (commit)" in res["commits_monotonic"].anomalies[0].message


def test_groups_commit_independently():
    h = History()
    h.commit("s", 5, group="g1").commit("s", 3, group="g2")
    assert failing(h.ops) == set()


def test_no_send_succeeds_after_the_last_heal():
    h = History()
    h.send("p", "a", 0).poll("c", [(0, "a")]).fault("partition")
    h.invoke_send("p", "b")
    h.now += 100
    h.op(process="p", type="info", f="send", partition=0, value="b")
    h.poll("f", [(0, "a")], final=True)
    assert failing(h.ops, window=30) == {"liveness"}


def test_an_acknowledged_value_read_too_late():
    h = History()
    h.send("p", "a", 0)
    h.now += 100
    h.poll("f", [(0, "a")], final=True)
    res = results(h.ops, window=30)
    assert failing(h.ops, window=30) == {"liveness"}
    assert "past the deadline" in res["liveness"].anomalies[0].message
    assert failing(h.ops, window=200) == set()


def test_liveness_counts_from_the_last_heal():
    h = History()
    h.fault("pause")
    h.send("p", "a", 0)
    h.now += 10
    h.fault("pause")
    h.now += 20
    h.poll("f", [(0, "a")], final=True)
    # acknowledged 32 s before the read, but the last heal was 22 s before it
    assert failing(h.ops, window=25) == set()
    assert failing(h.ops, window=15) == {"liveness"}


def test_a_consumer_that_stops_reading_without_a_fault():
    h = History()
    h.send("p", "a", 0).poll("c", [(0, "a")])
    for i in range(1, 50):
        h.send("p", f"v{i}", i)
    h.poll("f", [(0, "a")] + [(i, f"v{i}") for i in range(1, 50)], final=True)
    res = results(h.ops, window=30)
    assert "consumer_progress" in failing(h.ops, window=30)
    assert "never again" in res["consumer_progress"].anomalies[0].message
    assert "consumer_progress" not in failing(h.ops, window=200)


def test_time_under_a_fault_does_not_count_as_a_stall():
    h = History()
    h.send("p", "a", 0).poll("c", [(0, "a")])
    h.op(process="nemesis", type="info", f="fault", fault="pause", node="n1", topic=None, partition=None)
    h.now += 100
    h.op(process="nemesis", type="info", f="heal", fault="pause", node="n1", topic=None, partition=None)
    h.send("p", "b", 1).poll("c", [(1, "b")]).poll("f", [(0, "a"), (1, "b")], final=True)
    assert "consumer_progress" not in failing(h.ops, window=30)
    assert results(h.ops)["consumer_progress"].checked == 2


def test_short_quiet_stretches_between_faults_do_not_add_up():
    h = History()
    h.send("p", "a", 0).poll("c", [(0, "a")])
    for i in range(1, 20):
        h.fault("kill")  # 1 s of fault, then 1 s of quiet per operation
        h.send("p", f"v{i}", i)
    h.now += 5
    h.poll("c", [(i, f"v{i}") for i in range(1, 20)])
    h.poll("f", [(0, "a")] + [(i, f"v{i}") for i in range(1, 20)], final=True)
    assert "consumer_progress" not in failing(h.ops, window=10)
    assert "consumer_progress" in failing(h.ops, window=4)


def test_excerpts_are_bounded():
    h = History()
    h.send("p", "a", 0)
    ops = index_history(h.ops)
    r = check_liveness(ops, 0.0)
    assert r.ok or all(len(a.excerpt) <= 8 for a in r.anomalies)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_an_empty_history_passes(check):
    assert check([]).ok
