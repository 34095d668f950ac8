"""The component at run time: one worker process per camera, a supervisor that
restarts crashed workers with backoff, publishes their alerts, and reports telemetry.

Why processes: a video decoder that aborts or segfaults (native code, untrusted
streams) takes down the process it runs in. Each camera's capture, analysis and
inference run in their own process, so such a crash costs that camera a restart,
never the other cameras or the component. Alerts cross from a worker to the
supervisor over a pipe with a synchronous send, so an alert the worker sent before
crashing is not lost; the supervisor hands it to the publisher (normally the durable
outbox).

Telemetry (``vigil/<thing>/telemetry``, every ``telemetry_every_s``): per camera
frames in, analysed, dropped, bad frames, reconnects, crashes, restarts, inference
time, state; and the publisher's delivery stats (outbox depth, sent, dropped).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from .backoff import Backoff
from .capture.source import SourceError
from .config import CameraConfig, ComponentConfig
from .contracts.topics import telemetry_topic
from .delivery.publisher import Publisher, PublishError

log = logging.getLogger(__name__)
TELEMETRY_SCHEMA_VERSION = "1.0"
# Per-camera counters a worker reports; a crashed worker's are carried into its successor's.
COUNTERS = (
    "frames_in",
    "analysed",
    "dropped",
    "bad_frames",
    "reconnects",
    "windows",
    "events",
    "snapshot_errors",
    "invalid_scores",
    "blank_frames",
    "recalibrations",
)
EXIT_SOURCE_ERROR = 3  # a file that cannot be replayed: restarting will not help


class _PipePublisher:
    """The worker's publisher: sends each message to the supervisor, synchronously."""

    def __init__(self, conn: Connection):
        self._conn = conn
        self._lock = threading.Lock()

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        with self._lock:
            try:
                self._conn.send(("alert", topic, message))
            except (OSError, ValueError) as exc:
                raise PublishError(f"supervisor pipe closed: {exc}") from exc

    def send_stats(self, stats: dict[str, Any]) -> None:
        with self._lock:
            self._conn.send(("stats", stats))

    def close(self) -> None:
        pass


def camera_worker(
    conn: Connection,
    camera_json: str,
    config_json: str,
    model_dir: str,
    thing_name: str,
    snapshot_dir: str,
    stats_every_s: float,
) -> None:
    """Entry point of a camera's worker process (spawned): run one camera's pipeline."""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s camera-{os.getpid()} %(name)s: %(message)s"
    )
    from .camera import CameraPipeline
    from .events.snapshots import SnapshotStore
    from .model.bundle import load_bundle

    config = ComponentConfig.model_validate_json(config_json)
    camera = CameraConfig.model_validate_json(camera_json)
    pipe = _PipePublisher(conn)
    detector = CameraPipeline(
        config,
        load_bundle(model_dir, config.model_file),
        pipe,
        thing_name=thing_name,
        snapshots=SnapshotStore(snapshot_dir, config.snapshot_max_files),
    )
    stop = threading.Event()
    done = threading.Event()

    def report_stats() -> None:
        while not done.wait(stats_every_s):
            _send_stats(pipe, detector, camera.name)

    threading.Thread(target=report_stats, daemon=True).start()

    def watch_parent() -> None:  # the supervisor closed the pipe or died: stop cleanly
        try:
            while not stop.is_set():
                if conn.poll(0.5):
                    if conn.recv() == "stop":
                        stop.set()
        except (EOFError, OSError):
            stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        detector.run(camera, stop)
    except SourceError as exc:
        logging.getLogger(__name__).error("camera %s: %s", camera.name, exc)
        pipe.send_stats({"last_error": str(exc)})
        done.set()
        os._exit(EXIT_SOURCE_ERROR)
    finally:
        done.set()
        _send_stats(pipe, detector, camera.name)


def _send_stats(pipe: _PipePublisher, detector, camera: str) -> None:
    report = detector.reports.get(camera)
    if report is None:
        return
    stats = report.stats.as_dict()
    stats["windows"] = report.windows
    stats["inference_ms_mean"] = round(1000 * report.inference_s / report.windows, 4) if report.windows else 0.0
    stats["events"] = len(report.starts)
    stats["snapshot_errors"] = report.snapshot_errors
    stats["invalid_scores"] = report.invalid_scores
    stats["blank_frames"] = report.blank_frames
    stats["recalibrations"] = report.recalibrations
    try:
        pipe.send_stats(stats)
    except (OSError, ValueError):
        pass


@dataclass
class CameraState:
    camera: CameraConfig
    process: Any = None
    conn: Connection | None = None
    state: str = "starting"  # running | restarting | done | failed | stopped
    crashes: int = 0
    restarts: int = 0
    last_exit: int | None = None
    last_error: str = ""
    restart_at: float = 0.0
    backoff: Backoff = field(default_factory=lambda: Backoff(1.0, 60.0))  # restarts after crashes
    stats: dict[str, Any] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)  # counters of earlier, crashed processes


class Supervisor:
    """Runs every camera of ``config`` in its own process and publishes what they send.

    ``run(stop)`` returns when ``stop`` is set or every camera's source has ended
    (files in replay mode), with the final telemetry message. ``worker`` is the
    process entry point (a module-level function; tests pass one that crashes).
    """

    def __init__(
        self,
        config: ComponentConfig,
        *,
        model_dir: str | Path,
        thing_name: str,
        publisher: Publisher,
        snapshot_dir: str | Path,
        telemetry_every_s: float = 60.0,
        restart_backoff_s: float = 1.0,
        restart_backoff_max_s: float = 60.0,
        worker: Callable[..., None] = camera_worker,
        delivery_stats: Callable[[], dict[str, Any]] | None = None,
    ):
        self.config = config
        self.model_dir = str(model_dir)
        self.thing_name = thing_name
        self.publisher = publisher
        self.snapshot_dir = str(snapshot_dir)
        self.telemetry_every_s = telemetry_every_s
        self.restart_backoff_s = restart_backoff_s
        self.restart_backoff_max_s = restart_backoff_max_s
        self.worker = worker
        self.delivery_stats = delivery_stats
        self.telemetry_topic = telemetry_topic(thing_name)
        self.cameras = {
            c.name: CameraState(c, backoff=Backoff(restart_backoff_s, restart_backoff_max_s)) for c in config.cameras
        }
        self.started = time.monotonic()
        self.alerts_forwarded = 0
        self._ctx = mp.get_context("spawn")  # no fork: the parent has threads

    def _start(self, cs: CameraState) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        cs.process = self._ctx.Process(
            target=self.worker,
            name=f"camera-{cs.camera.name}",
            daemon=True,
            args=(
                child,
                cs.camera.model_dump_json(),
                self.config.model_dump_json(),
                self.model_dir,
                self.thing_name,
                self.snapshot_dir,
                min(self.telemetry_every_s, 5.0),
            ),
        )
        cs.process.start()
        child.close()
        cs.conn = parent
        cs.state = "running"

    def _drain(self, cs: CameraState) -> None:
        try:
            while cs.conn is not None and cs.conn.poll():
                item = cs.conn.recv()
                if item[0] == "alert":
                    _, topic, message = item
                    try:
                        self.publisher.publish(topic, message)
                        self.alerts_forwarded += 1
                    except PublishError as exc:
                        log.error(
                            "alert %s from camera %s not accepted by the publisher: %s",
                            message.get("event_id"),
                            cs.camera.name,
                            exc,
                        )
                elif item[0] == "stats":
                    cs.stats = item[1]
        except (EOFError, OSError):
            cs.conn = None

    def _check(self, cs: CameraState, now: float) -> None:
        if cs.state == "restarting" and now >= cs.restart_at:
            cs.restarts += 1
            self._start(cs)
            return
        if cs.state != "running" or cs.process.is_alive():
            return
        self._drain(cs)  # whatever it sent before it exited
        code = cs.process.exitcode
        cs.last_exit = code
        for key in COUNTERS:
            cs.totals[key] = cs.totals.get(key, 0) + cs.stats.get(key, 0)
        cs.last_error = cs.stats.get("last_error", cs.last_error)
        cs.stats = {}
        if code == 0:
            cs.state = "done"
            log.info("camera %s: source ended", cs.camera.name)
            return
        if code == EXIT_SOURCE_ERROR:
            cs.state = "failed"
            log.error("camera %s: source cannot be read; not restarting", cs.camera.name)
            return
        cs.crashes += 1
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        delay = cs.backoff.failed()
        log.error("camera %s: worker crashed (%s); restarting in %.1fs", cs.camera.name, how, delay)
        cs.state = "restarting"
        cs.restart_at = now + delay
        self.publish_telemetry()  # a crash is news now, not at the next tick

    def telemetry(self) -> dict[str, Any]:
        cams = {}
        for name, cs in self.cameras.items():
            counters = {k: cs.totals.get(k, 0) + cs.stats.get(k, 0) for k in COUNTERS}
            cams[name] = {
                "state": cs.state,
                "crashes": cs.crashes,
                "restarts": cs.restarts,
                "last_exit": cs.last_exit,
                "inference_ms_mean": cs.stats.get("inference_ms_mean", 0.0),
                "last_error": cs.stats.get("last_error") or cs.last_error,
                **counters,
            }
        msg = {
            "schema_version": TELEMETRY_SCHEMA_VERSION,
            "thing_name": self.thing_name,
            "sent_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "alerts_forwarded": self.alerts_forwarded,
            "cameras": cams,
        }
        if self.delivery_stats is not None:
            msg["delivery"] = self.delivery_stats()
        return msg

    def publish_telemetry(self) -> dict[str, Any]:
        msg = self.telemetry()
        # Newest-only where the publisher supports it: heartbeats must never crowd alerts out of the outbox.
        send = getattr(self.publisher, "publish_latest", self.publisher.publish)
        try:
            send(self.telemetry_topic, msg)
        except PublishError as exc:
            log.warning("telemetry not published: %s", exc)
        return msg

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        stop = stop or threading.Event()
        for cs in self.cameras.values():
            self._start(cs)
        next_telemetry = time.monotonic() + self.telemetry_every_s
        try:
            while not stop.is_set():
                conns = [cs.conn for cs in self.cameras.values() if cs.conn is not None]
                if conns:
                    wait(conns, timeout=0.2)
                else:
                    stop.wait(0.2)
                now = time.monotonic()
                for cs in self.cameras.values():
                    self._drain(cs)
                    self._check(cs, now)
                if all(cs.state in ("done", "failed") for cs in self.cameras.values()):
                    break
                if now >= next_telemetry:
                    self.publish_telemetry()
                    next_telemetry = now + self.telemetry_every_s
        finally:
            self._shutdown()
        return self.publish_telemetry()

    def _shutdown(self) -> None:
        for cs in self.cameras.values():
            if cs.process is not None and cs.process.is_alive():
                try:
                    cs.conn.send("stop")
                except (OSError, AttributeError, ValueError):
                    pass
        deadline = time.monotonic() + 10
        for cs in self.cameras.values():
            if cs.process is None:
                continue
            cs.process.join(timeout=max(0.1, deadline - time.monotonic()))
            self._drain(cs)
            if cs.process.is_alive():
                log.warning("camera %s: worker did not stop in time; terminating", cs.camera.name)
                cs.process.terminate()
                cs.process.join(timeout=5)
            if cs.state == "running":
                cs.state = "stopped"
