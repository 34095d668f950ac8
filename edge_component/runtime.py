"""The component at run time: one worker process per camera, a supervisor that
restarts crashed workers with backoff, publishes their alerts, and reports telemetry.

Why processes: a video decoder that aborts or segfaults (native code, untrusted
streams) takes down the process it runs in. Each camera's capture, analysis and
inference run in their own process, so such a crash costs that camera a restart,
never the other cameras or the component. Alerts cross from a worker to the
supervisor over a pipe with a synchronous send, so an alert the worker sent before
crashing is not lost; the supervisor hands it to the publisher (normally the durable
outbox).

A worker that crashes ``max_crashes_without_progress`` times in a row without getting
further than before (a replay: more frames than any earlier attempt; live: any frame)
marks its camera ``failed`` with its last error; a replay then ends, a live camera goes
on retrying at the longest backoff. A worker stopped by SIGTERM/SIGINT is stopped, not
crashed. A configuration update (:meth:`Supervisor.update_config`) restarts only the
cameras it changes.

With ``evidence`` (a started :class:`~edge_component.evidence.uploader.SnapshotUploader`)
each alert's snapshot is queued for upload after the alert went to the publisher; an
update that turns ``evidence.upload_snapshots`` off stops it at once.

Telemetry (``vigil/<thing>/telemetry``, every ``telemetry_every_s``): per camera
frames in, analysed, dropped, bad frames, reconnects, crashes, restarts, inference
time, ``state`` (connecting, running, reconnecting, restarting, failed, done, stopped),
``last_frame_at`` (UTC), ``last_error`` (empty once frames flow again) and ``recent``
(frames analysed and blank since the previous message); the publisher's delivery stats
(outbox depth, sent, dropped); with evidence uploads on, ``evidence`` (queued,
uploaded, given_up, failed_attempts); and the model it scores with: ``model``
``{"sha256", "version", "file"}`` (the model file's SHA-256 as in alerts'
``model_sha256``, the model component version or null, the file name;
edge_component/model/source.py), or ``{"load_error": "..."}`` if the model of a
configuration update cannot be read.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from .backoff import Backoff
from .camera_state import CameraState
from .config import CameraConfig, ComponentConfig
from .config_updates import plan_update
from .contracts.topics import telemetry_topic
from .delivery.publisher import Publisher, PublishError
from .evidence.uploader import SnapshotUploader
from .model.errors import ModelError
from .worker import EXIT_SOURCE_ERROR, EXIT_STOPPED, camera_worker

log = logging.getLogger(__name__)
# 1.1 (additive; 1.0 readers ignore both): per camera `recent` (analysed, blank_frames
# since the previous message) and the "model" it scores with.
TELEMETRY_SCHEMA_VERSION = "1.1"
STOP_CODES = (EXIT_STOPPED, -signal.SIGTERM, -signal.SIGINT)  # a stop, not a crash


class Supervisor:
    """Runs every camera of ``config`` in its own process and publishes what they send.

    ``run(stop)`` returns when ``stop`` is set or every camera has ended (files in
    replay mode) or failed, with the final telemetry message. ``worker`` is the
    process entry point (a module-level function; tests pass one that crashes).
    ``model_info(model_file)``: telemetry's ``model`` object for the configuration's
    ``model_file`` (None: the manifest's); absent, telemetry has no ``model``.
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
        max_crashes_without_progress: int = 5,
        worker: Callable[..., None] = camera_worker,
        delivery_stats: Callable[[], dict[str, Any]] | None = None,
        evidence: SnapshotUploader | None = None,
        model_info: Callable[[str | None], dict[str, Any]] | None = None,
    ):
        self.config = config
        self.model_dir = str(model_dir)
        self.thing_name = thing_name
        self.publisher = publisher
        self.snapshot_dir = str(snapshot_dir)
        self.telemetry_every_s = telemetry_every_s
        self.restart_backoff_s = restart_backoff_s
        self.restart_backoff_max_s = restart_backoff_max_s
        self.max_crashes_without_progress = max_crashes_without_progress
        self.worker = worker
        self.delivery_stats = delivery_stats
        self.evidence = evidence
        self.model_info = model_info  # config.model_file -> telemetry's "model"
        self.telemetry_topic = telemetry_topic(thing_name)
        self.cameras = {c.name: self._state(c) for c in config.cameras}
        self.started = time.monotonic()
        self.alerts_forwarded = 0
        self._ctx = mp.get_context("spawn")  # no fork: the parent has threads
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: ComponentConfig | None = None

    @property
    def stats_every_s(self) -> float:
        return min(self.telemetry_every_s, 5.0)

    def _state(self, camera: CameraConfig) -> CameraState:
        return CameraState(camera, backoff=Backoff(self.restart_backoff_s, self.restart_backoff_max_s))

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
                self.stats_every_s,
            ),
        )
        cs.process.start()
        child.close()
        cs.conn = parent
        cs.state, cs.progressed, cs.started_at = "running", False, time.time()

    def _drain(self, cs: CameraState) -> None:
        try:
            while cs.conn is not None and cs.conn.poll():
                item = cs.conn.recv()
                if item[0] == "alert":
                    _, topic, message = item
                    try:
                        self.publisher.publish(topic, message)
                        self.alerts_forwarded += 1
                        if self.evidence is not None:  # after the alert: an upload never delays it
                            self.evidence.offer(message)
                    except PublishError as exc:
                        log.error(
                            "alert %s from camera %s not accepted by the publisher: %s",
                            message.get("event_id"),
                            cs.camera.name,
                            exc,
                        )
                elif item[0] == "stats":
                    cs.report(item[1])
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
        cs.retire()
        name = cs.camera.name
        if code == 0:
            cs.state = "done"
            log.info("camera %s: source ended", name)
            return
        if code == EXIT_SOURCE_ERROR:
            cs.state = "failed"
            log.error("camera %s: source cannot be read; not restarting", name)
            return
        how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        if code in STOP_CODES:
            log.info("camera %s: worker stopped (%s), not a crash", name, how)
            cs.state, cs.restart_at = ("stopped", now) if self._stop.is_set() else ("restarting", now + 0.5)
            return
        cs.crashes += 1
        cs.stalled = 0 if cs.progressed else cs.stalled + 1
        cs.last_error = f"worker crashed ({how})" + (f" after: {cs.last_error}" if cs.last_error else "")
        if cs.stalled >= self.max_crashes_without_progress and not cs.given_up:
            log.error("camera %s: failed, %d crashes without progress; last: %s", name, cs.stalled, cs.last_error)
            cs.given_up = True
            if cs.replay:  # a file that crashes its decoder every time will not replay: end it
                cs.state = "failed"
                self.publish_telemetry()
                return
        delay = cs.backoff.failed()
        log.error("camera %s: worker crashed (%s); restarting in %.1fs", name, how, delay)
        cs.state = "restarting"
        cs.restart_at = now + delay
        self.publish_telemetry()  # a crash is news now, not at the next tick

    def telemetry(self) -> dict[str, Any]:
        cams = {name: cs.telemetry(self.stats_every_s) for name, cs in self.cameras.items()}
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
        if self.model_info is not None:
            try:
                msg["model"] = self.model_info(self.config.model_file)
            except ModelError as exc:  # a heartbeat must still go out, and say why
                msg["model"] = {"sha256": None, "version": None, "file": self.config.model_file, "load_error": str(exc)}
        if self.evidence is not None:
            msg["evidence"] = self.evidence.stats()
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

    def update_config(self, config: ComponentConfig) -> None:
        """Apply a new, already validated configuration (from any thread) at the next
        tick: cameras it removes stop, new ones start, changed ones restart, the others
        keep running."""
        with self._lock:
            self._pending = config

    def _apply_pending(self) -> None:
        with self._lock:
            new, self._pending = self._pending, None
        if new is None:
            return
        plan = plan_update(self.config, new)
        if plan.needs_component_restart:
            log.warning(
                "configuration: %s change at the next component restart", ", ".join(plan.needs_component_restart)
            )
        if self.evidence is not None and not new.evidence.upload_snapshots:
            # Pictures are personal data: turning uploads off takes effect now, not at the next restart.
            self.evidence.close()
            self.evidence = None
            log.warning("configuration: evidence uploads turned off; nothing more is uploaded")
        self.config, self.telemetry_every_s = new, new.telemetry_every_s
        cameras = {c.name: c for c in new.cameras}
        for name in plan.stop + plan.restart:
            old = self.cameras.pop(name)
            self._stop_worker(old)
            if name in plan.restart:
                self.cameras[name] = self._state(cameras[name])
                self.cameras[name].totals = old.totals
        for name in plan.start:
            self.cameras[name] = self._state(cameras[name])
        self.cameras = {c.name: self.cameras[c.name] for c in new.cameras}  # the configuration's order
        for name in plan.start + plan.restart:
            self._start(self.cameras[name])
        log.info("configuration applied: started %s, restarted %s, stopped %s", plan.start, plan.restart, plan.stop)
        self.publish_telemetry()

    def _stop_worker(self, cs: CameraState, grace_s: float = 10.0) -> None:
        if cs.process is None:
            return
        try:
            cs.conn.send("stop")
        except (OSError, AttributeError, ValueError):
            pass
        self._join_draining([cs], time.monotonic() + grace_s)
        if cs.process.is_alive():
            log.warning("camera %s: worker did not stop in time; terminating", cs.camera.name)
            cs.process.terminate()
            cs.process.join(timeout=5)
        cs.retire()

    def _join_draining(self, states: list[CameraState], deadline: float) -> None:
        """Wait until the workers of ``states`` exit or ``deadline`` (monotonic s) passes,
        forwarding what they send meanwhile: a stopping worker sends the ends of its open
        events, and one blocked on a full pipe would never exit."""
        while True:
            alive = [cs for cs in states if cs.process is not None and cs.process.is_alive()]
            left = deadline - time.monotonic()
            if not alive or left <= 0:
                break
            handles = [cs.process.sentinel for cs in alive] + [cs.conn for cs in alive if cs.conn is not None]
            wait(handles, timeout=min(left, 0.5))
            for cs in alive:
                self._drain(cs)
        for cs in states:
            if cs.process is not None:
                cs.process.join(timeout=0.1)  # reaped: exitcode set
            self._drain(cs)

    def run(self, stop: threading.Event | None = None) -> dict[str, Any]:
        self._stop = stop = stop or threading.Event()
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
                self._apply_pending()
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
        self._stop.set()  # what exits from here on was stopped, not crashed
        for cs in self.cameras.values():
            if cs.process is not None and cs.process.is_alive():
                try:
                    cs.conn.send("stop")
                except (OSError, AttributeError, ValueError):
                    pass
        self._join_draining(list(self.cameras.values()), time.monotonic() + 10)
        for cs in self.cameras.values():
            if cs.process is None:
                continue
            if cs.process.is_alive():
                log.warning("camera %s: worker did not stop in time; terminating", cs.camera.name)
                cs.process.terminate()
                cs.process.join(timeout=5)
            if cs.state == "running":
                code = cs.last_exit = cs.process.exitcode
                cs.retire()
                cs.state = "done" if code == 0 and cs.replay else "stopped"
            elif cs.state == "restarting":
                cs.state = "stopped"
