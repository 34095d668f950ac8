"""The handover journal (edge_component/delivery/handover.py): what Greengrass took is kept
and, after a restart, handed over again ahead of the outbox's backlog.

The nucleus is the fake IPC client ``SpoolingNucleus`` (conftest): IPC PublishToIoTCore
returns once the message is in the nucleus's spooler, which is in memory without
aws.greengrass.DiskSpooler (aws-greengrass-nucleus MqttClient.java ``publish``; Spool.java),
so a nucleus restart empties it. A "restart" here is new Outbox, HandoverJournal and
OutboxPublisher objects over the same files, as ``__main__`` makes them at start.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess

import pytest

from edge_component.config import ConfigError, parse_config
from edge_component.contracts.topics import alert_topic
from edge_component.delivery.handover import HandoverJournal, encode, replay_into
from edge_component.delivery.ipc import GreengrassIpcPublisher
from edge_component.delivery.outbox import Outbox
from edge_component.delivery.sender import OutboxPublisher

THING = "cam-test-01"
TOPIC = alert_topic(THING)
FAST = {"retry_initial_s": 0.02, "retry_max_s": 0.2}  # backoff for tests; defaults are 0.5 s .. 30 s
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def start(state, nucleus, clock=None, **journal):
    """What __main__ does at start: outbox, journal, replay, then the sender."""
    outbox = Outbox(state / "outbox.sqlite")
    jr = HandoverJournal(state / "handover.sqlite", clock=clock or Clock(), **journal)
    replayed = replay_into(jr, outbox, thing_name=THING)
    return OutboxPublisher(outbox, GreengrassIpcPublisher(nucleus), journal=jr, **FAST), replayed


def test_a_published_alert_leaves_the_outbox_and_stays_in_the_journal(tmp_path, make_alerts, SpoolingNucleus):
    alerts = make_alerts(2)
    nucleus = SpoolingNucleus(max_messages=100)
    pub, replayed = start(tmp_path, nucleus)
    assert replayed == 0  # a first start has nothing to replay
    for a in alerts:
        pub.publish(TOPIC, a)
    assert pub.flush(10)
    assert pub.outbox.depth == 0 and nucleus.spool == alerts
    assert [(t, json.loads(p)) for t, p, _ in pub.journal.replay()] == [(TOPIC, a) for a in alerts]
    pub.close()


def test_after_a_nucleus_restart_the_handed_over_alerts_go_again_once_in_order_before_the_backlog_and_new_ones(
    tmp_path, make_alerts, SpoolingNucleus
):
    """Offline: the spool takes 4 alerts, then is full, so 2 stay in the outbox. The nucleus
    restarts (spool emptied) and the component with it. The 4 go again ahead of the 2,
    then a new alert; IoT Core gets every alert exactly once, in order."""
    alerts = make_alerts(2)
    nucleus = SpoolingNucleus(max_messages=4)
    pub, _ = start(tmp_path, nucleus)
    for a in alerts:
        pub.publish(TOPIC, a)
    assert not pub.flush(1.0)  # the spool is full: 2 are still in the outbox
    assert nucleus.spool == alerts[:4] and pub.outbox.depth == 2
    pub.close()
    nucleus.restart()
    assert nucleus.spool == []  # the 4 it took are gone with the nucleus

    nucleus.max_messages = 100
    new = make_alerts(1)
    pub, replayed = start(tmp_path, nucleus)
    assert replayed == 4
    for a in new:
        pub.publish(TOPIC, a)
    assert pub.flush(10)
    nucleus.reconnect()
    assert nucleus.iot_core == alerts + new
    # One entry per alert: those sent again kept their first entry.
    assert [json.loads(p) for _, p, _ in pub.journal.replay()] == alerts + new
    pub.close()


def test_a_restart_with_nothing_lost_sends_the_day_again_and_the_lambda_gets_repeats(
    tmp_path, make_alerts, SpoolingNucleus
):
    """Online, the spool reached IoT Core; a restart still replays (the component cannot
    know): every alert arrives twice, same event_id, which the Lambda's deduplication absorbs."""
    alerts = make_alerts(1)
    nucleus = SpoolingNucleus(max_messages=100)
    pub, _ = start(tmp_path, nucleus)
    for a in alerts:
        pub.publish(TOPIC, a)
    assert pub.flush(10)
    nucleus.reconnect()
    pub.close()
    pub, replayed = start(tmp_path, nucleus)
    assert replayed == 3
    assert pub.flush(10)
    nucleus.reconnect()
    assert nucleus.iot_core == alerts + alerts
    pub.close()


def test_entries_older_than_the_replay_age_are_not_replayed_and_are_deleted(tmp_path, make_alerts):
    clock = Clock()
    alerts = make_alerts(1)
    jr = HandoverJournal(tmp_path / "h.sqlite", replay_s=DAY, clock=clock)
    jr.record(TOPIC, alerts[0], clock.now)
    clock.now += DAY / 2
    jr.record(TOPIC, alerts[1], clock.now)
    jr.close()

    clock.now += DAY / 2 + 1  # the first is a day and a second old, the second half a day
    jr = HandoverJournal(tmp_path / "h.sqlite", replay_s=DAY, clock=clock)
    assert [json.loads(p) for _, p, _ in jr.replay()] == [alerts[1]]
    assert len(jr) == 1  # the old one is gone from the file
    jr.close()


def test_a_replayed_alert_sent_again_keeps_its_first_age_so_a_crash_loop_does_not_keep_it(
    tmp_path, make_alerts, SpoolingNucleus
):
    clock = Clock()
    alerts = make_alerts(1)
    nucleus = SpoolingNucleus(max_messages=100)
    pub, _ = start(tmp_path, nucleus, clock, replay_s=DAY)
    for a in alerts:
        pub.publish(TOPIC, a)
    assert pub.flush(10)
    pub.close()
    for _ in range(3):  # restarts over most of a day: replayed and sent each time
        clock.now += DAY / 4
        pub, replayed = start(tmp_path, nucleus, clock, replay_s=DAY)
        assert replayed == 3
        assert pub.flush(10)
        pub.close()
    clock.now += DAY / 4 + 1  # a day after the first handover
    pub, replayed = start(tmp_path, nucleus, clock, replay_s=DAY)
    assert replayed == 0
    pub.close()


def test_the_journal_keeps_at_most_max_messages_the_newest(tmp_path):
    jr = HandoverJournal(tmp_path / "h.sqlite", max_messages=10)
    messages = [{"n": n} for n in range(25)]
    for m in messages:
        assert jr.record(TOPIC, m, 0.0)
    assert len(jr) == 10
    assert [json.loads(p) for _, p, _ in jr.replay()] == messages[-10:]
    jr.close()


def test_replay_skips_what_the_backlog_still_holds_and_respects_the_outbox_bound(tmp_path, caplog):
    """put_first: a journal entry equal to a backlog row is not stored twice; with too
    little room the oldest replayed ones are left out, never the backlog."""
    box = Outbox(tmp_path / "o.sqlite", max_messages=4)
    box.put(TOPIC, {"n": 3})
    box.put(TOPIC, {"n": 4})
    replay = [(TOPIC, encode({"n": n}), 0.0) for n in (0, 1, 2, 3)]
    with caplog.at_level(logging.WARNING):
        assert box.put_first(replay) == 2
    assert [i.message["n"] for i in box.peek(10)] == [1, 2, 3, 4]
    assert "1 replayed messages left out" in caplog.text
    box.close()
    again = Outbox(tmp_path / "o.sqlite", max_messages=4)  # the id marks agree with the file: nothing lost
    assert again.lost == 0 and again.depth == 4
    again.close()


@pytest.mark.parametrize(
    ("content", "kind"),
    [("garbage", "corrupt"), ("foreign", "foreign")],
)
def test_a_corrupt_or_foreign_journal_is_set_aside_and_the_component_still_sends(
    tmp_path, make_alerts, SpoolingNucleus, caplog, content, kind
):
    path = tmp_path / "handover.sqlite"
    if content == "garbage":
        path.write_bytes(b"this is not a database, it is bit rot on an SD card" * 100)
    else:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE something_else (x)")
        conn.commit()
        conn.close()
    alerts = make_alerts(1)
    nucleus = SpoolingNucleus(max_messages=100)
    with caplog.at_level(logging.ERROR):
        pub, replayed = start(tmp_path, nucleus)
    assert replayed == 0
    moved = pub.journal.quarantined
    assert moved is not None and moved.name.startswith(f"handover.sqlite.{kind}-") and moved.exists()
    assert f"handover journal {path}" in caplog.text and str(moved) in caplog.text
    for a in alerts:
        pub.publish(TOPIC, a)
    assert pub.flush(10)
    assert nucleus.spool == alerts
    assert len(pub.journal) == 3  # the fresh journal works
    pub.close()


def test_replay_age_zero_turns_the_journal_off(tmp_path, make_alerts, SpoolingNucleus):
    nucleus = SpoolingNucleus(max_messages=100)
    pub, _ = start(tmp_path, nucleus, replay_s=0)
    pub.publish(TOPIC, make_alerts(1)[0])
    assert pub.flush(10)
    assert not pub.journal.enabled and not (tmp_path / "handover.sqlite").exists()
    pub.close()


def test_the_replay_age_is_configurable_up_to_the_lambdas_seven_day_deduplication():
    """lambda/vigil_alerts/delivery.py: IDEMPOTENCY_TTL_S = 7 days; a longer replay could notify twice."""
    zone = {"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}
    base = {"cameras": [{"name": "c", "source": "v.mp4", "zones": [zone]}]}
    assert parse_config(base).handover_replay_s == DAY
    assert parse_config(base | {"handover_replay_s": 7 * DAY}).handover_replay_s == 7 * DAY
    with pytest.raises(ConfigError, match="handover_replay_s"):
        parse_config(base | {"handover_replay_s": 7 * DAY + 1})


def test_a_journal_that_cannot_be_written_never_holds_an_alert_back(tmp_path, padded, SpoolingNucleus, caplog):
    """A full disk (simulated with SQLite's max_page_count, which reports SQLITE_FULL as a
    full disk does): every alert still goes out and leaves the outbox; the journal's
    failure is logged once per streak."""
    nucleus = SpoolingNucleus(max_messages=100)
    pub, _ = start(tmp_path, nucleus)
    conn = pub.journal._conn
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    alerts = padded(2)
    with caplog.at_level(logging.INFO):
        for a in alerts:
            pub.publish(TOPIC, a)
        assert pub.flush(10)
        assert nucleus.spool == alerts and pub.outbox.depth == 0
        assert len(pub.journal) == 0
        assert caplog.text.count("cannot be written (database or disk is full)") == 1
        conn.execute("PRAGMA max_page_count = 1073741823")
        more = padded(1)
        for a in more:
            pub.publish(TOPIC, a)
        assert pub.flush(10)
    assert len(pub.journal) == 3 and "can be written again" in caplog.text
    pub.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("created_at", "'2026-12-03T07:00:00Z'"),
        ("handed_at", "'yesterday'"),
        ("payload", "x'00ff'"),
        ("topic", "x'41'"),
    ],
)
def test_an_unreadable_journal_row_is_deleted_with_a_log_and_the_rest_is_replayed(tmp_path, caplog, column, value):
    """SQLite keeps any type in any column: a row with a text time (another program, bit
    rot) is skipped and deleted, naming the journal file, and never stops the start."""
    clock = Clock()
    path = tmp_path / "handover.sqlite"
    jr = HandoverJournal(path, clock=clock)
    for n in range(3):
        jr.record(TOPIC, {"n": n}, clock.now)
    jr.close()
    conn = sqlite3.connect(path)
    conn.execute(f"UPDATE handover SET {column} = {value} WHERE id = 2")
    conn.commit()
    conn.close()
    jr = HandoverJournal(path, clock=clock)
    box = Outbox(tmp_path / "outbox.sqlite")
    with caplog.at_level(logging.ERROR):
        assert replay_into(jr, box) == 2
    assert [i.message["n"] for i in box.peek(10)] == [0, 2]
    assert f"handover journal {path}: 1 entries cannot be read" in caplog.text and column in caplog.text
    assert len(jr) == 2  # deleted from the file
    jr.close()
    box.close()


def test_replay_keeps_only_this_things_topics_and_alerts_valid_now(tmp_path, make_alerts, caplog):
    """An entry from before a thing rename would be refused by the nucleus (not authorized
    for that topic); an alert the schema no longer accepts would be refused by the Lambda.
    Neither is replayed; both are logged."""
    clock = Clock()
    alerts = make_alerts(1)
    jr = HandoverJournal(tmp_path / "handover.sqlite", clock=clock)
    jr.record(alert_topic("oldthing"), alerts[0], clock.now)
    jr.record(TOPIC, {"schema_version": 99, "bogus": True}, clock.now)
    jr.record(TOPIC, alerts[1], clock.now)
    jr.close()
    jr = HandoverJournal(tmp_path / "handover.sqlite", clock=clock)
    box = Outbox(tmp_path / "outbox.sqlite")
    with caplog.at_level(logging.WARNING):
        assert replay_into(jr, box, thing_name=THING) == 1
    assert [(i.topic, i.message) for i in box.peek(10)] == [(TOPIC, alerts[1])]
    assert "2 entries not replayed" in caplog.text
    assert "'vigil/oldthing/alerts', not a topic of thing cam-test-01" in caplog.text
    assert "no longer valid" in caplog.text
    jr.close()
    box.close()


def test_an_alert_the_nucleus_refuses_for_good_is_dead_lettered_and_the_queue_moves_on(
    tmp_path, make_alerts, SpoolingNucleus, caplog
):
    """IPC UnauthorizedError (the recipe's accessControl does not allow PublishToIoTCore on
    the topic: https://docs.aws.amazon.com/greengrass/v2/developerguide/ipc-iot-core-mqtt.html)
    cannot pass on a retry: the message goes to dead_letters and the ones behind it go out.
    A full spool (ServiceError) stays retryable: nothing is dead-lettered for it."""
    from awsiot.greengrasscoreipc.model import UnauthorizedError

    class Nucleus(SpoolingNucleus):
        def publish_to_iot_core(self, *, topic_name, qos, payload):
            if topic_name != TOPIC:
                raise UnauthorizedError(message=f"not authorized to publish to {topic_name}")
            super().publish_to_iot_core(topic_name=topic_name, qos=qos, payload=payload)

    alerts = make_alerts(1)
    nucleus = Nucleus(max_messages=0)  # the spool is full at first: refused, but not for good
    outbox = Outbox(tmp_path / "outbox.sqlite")
    pub = OutboxPublisher(outbox, GreengrassIpcPublisher(nucleus), **FAST)
    pub.publish(TOPIC, alerts[0])
    assert not pub.flush(0.5)
    assert pub.stats()["retries"] >= 2 and pub.stats()["dead"] == 0 and outbox.depth == 1
    nucleus.max_messages = 100
    with caplog.at_level(logging.ERROR):
        pub.publish(alert_topic("oldthing"), alerts[1])
        pub.publish(TOPIC, alerts[2])
        assert pub.flush(10)
    assert nucleus.spool == [alerts[0], alerts[2]]
    assert pub.stats()["dead"] == 1
    assert "refused for good, moved to dead_letters" in caplog.text and "UnauthorizedError" in caplog.text
    pub.close()
    conn = sqlite3.connect(tmp_path / "outbox.sqlite")
    [(topic, reason)] = conn.execute("SELECT CAST(topic AS TEXT), reason FROM dead_letters").fetchall()
    conn.close()
    assert topic == alert_topic("oldthing") and "UnauthorizedError" in reason


def test_on_a_full_disk_the_journal_is_read_only_replayed_held_in_memory_and_not_purged(
    real_full_disk, make_alerts, SpoolingNucleus, caplog
):
    """SQLite cannot open the journal for writing on a full tmpfs ("disk I/O error": no room
    for its -shm). It is opened read-only, its young entries are replayed (held in memory
    when the outbox, on the same disk, cannot store them) and nothing is deleted from it."""
    tiny = real_full_disk.dir
    clock = Clock()
    alerts = make_alerts(1)
    Outbox(tiny / "outbox.sqlite").close()
    jr = HandoverJournal(tiny / "handover.sqlite", clock=clock)
    jr.record(TOPIC, alerts[0], clock.now)
    clock.now += DAY / 2
    for a in alerts[1:]:
        jr.record(TOPIC, a, clock.now)
    jr.close()
    clock.now += DAY / 2 + 1  # the first is over a day old
    real_full_disk.fill()

    nucleus = SpoolingNucleus(max_messages=100)
    outbox = Outbox(tiny / "outbox.sqlite")
    unstored = []
    with caplog.at_level(logging.INFO):
        jr = HandoverJournal(tiny / "handover.sqlite", clock=clock)
        assert replay_into(jr, outbox, thing_name=THING, unstored=unstored) == 2
    assert "opened it read-only to replay what it holds" in caplog.text
    assert "replaying 2 entries handed over in the last 86400 s, keeping 1 old" in caplog.text
    pub = OutboxPublisher(outbox, GreengrassIpcPublisher(nucleus), journal=jr, **FAST)
    pub.hold_replayed(unstored)
    assert pub.flush(10)
    assert nucleus.spool == alerts[1:]
    pub.close()
    real_full_disk.free()
    conn = sqlite3.connect(tiny / "handover.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM handover").fetchone()[0] == 3  # nothing purged
    conn.close()


def test_a_journal_lock_it_cannot_take_runs_without_the_journal_and_says_journal(tmp_path, caplog):
    """The lock file is a directory, or another owner holds it: the component still starts
    (without the journal) and the log names the handover journal, not the outbox."""
    path = tmp_path / "handover.sqlite"
    first = HandoverJournal(path)
    with caplog.at_level(logging.ERROR):
        second = HandoverJournal(path)
    assert first.enabled and not second.enabled
    assert f"handover journal {path} is in use" in caplog.text and "running without the handover journal" in caplog.text
    assert second.replay() == [] and not second.record(TOPIC, {"n": 1}, 0.0)
    second.close()
    first.close()
    other = tmp_path / "other" / "handover.sqlite"
    other.with_name("handover.sqlite.lock").mkdir(parents=True)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        jr = HandoverJournal(other)
    assert not jr.enabled
    assert f"of handover journal {other}" in caplog.text and "outbox" not in caplog.text
    jr.close()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_replay_age_that_is_not_a_finite_number_says_so(value):
    """YAML ``.nan`` is not "more than 7 days": the message names the real problem."""
    zone = {"name": "z", "polygon": [[0, 0], [1, 0], [1, 1]]}
    base = {"cameras": [{"name": "c", "source": "v.mp4", "zones": [zone]}]}
    with pytest.raises(ConfigError, match="handover_replay_s: Input should be a finite number"):
        parse_config(base | {"handover_replay_s": value})


def test_a_read_only_journal_still_replays_what_is_young_and_keeps_the_old(tmp_path, make_alerts, caplog):
    """An immutable file (``chattr +i``, which binds root too): SQLite opens it read-only,
    so the purge of old entries fails; that is logged and the young ones are replayed."""
    clock = Clock()
    alerts = make_alerts(1)
    path = tmp_path / "handover.sqlite"
    jr = HandoverJournal(path, clock=clock)
    jr.record(TOPIC, alerts[0], clock.now)
    clock.now += DAY / 2
    jr.record(TOPIC, alerts[1], clock.now)
    jr.close()
    clock.now += DAY / 2 + 1  # the first is over a day old
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and a filesystem that supports it)")
    try:
        jr = HandoverJournal(path, clock=clock)
        with caplog.at_level(logging.WARNING):
            assert [json.loads(p) for _, p, _ in jr.replay()] == [alerts[1]]
        assert "cannot delete 1 old or unreadable entries now" in caplog.text
        assert len(jr) == 2  # kept for a start that can write
        jr.close()
    finally:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
