"""A camera's worker process: runs one camera's :class:`~edge_component.camera.CameraPipeline`
and sends its alerts and stats to the supervisor (edge_component/runtime.py) over a pipe.

Exit status, read by the supervisor: 0 the source ended (a replay finished, or a live
camera was told to stop by the supervisor); ``EXIT_SOURCE_ERROR`` the file cannot be read
(restarting will not help); ``EXIT_STOPPED`` stopped by SIGTERM/SIGINT, or a replay told
to stop by the supervisor's ``"stop"`` before it ended. Anything else, or death by
another signal, is a crash.

A stop, by signal or ``"stop"``, ends the pipeline at its next frame (live) or window
(replay), so the events it has open get their ``end`` (``end_reason`` ``stopped``) and
reach the supervisor before the worker exits. A second signal stops it at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from .capture.source import SourceError
from .config import CameraConfig, ComponentConfig, is_live
from .delivery.publisher import PublishError

EXIT_SOURCE_ERROR = 3  # a file that cannot be replayed: restarting will not help
EXIT_STOPPED = 4  # told to stop before the source ended: not a crash


class _Stopped(BaseException):
    """Raised in the worker's main thread by a second SIGTERM/SIGINT: stop at once."""


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
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the handler below: Ctrl-C is not a crash
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s camera-{os.getpid()} %(name)s: %(message)s"
    )
    from .camera import CameraPipeline
    from .events.snapshots import SnapshotStore
    from .model.bundle import load_bundle

    config = ComponentConfig.model_validate_json(config_json)
    camera = CameraConfig.model_validate_json(camera_json)
    replay = camera.mode == "replay" or (camera.mode == "auto" and not is_live(camera.source))
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
        # The first report comes early: it is how the supervisor sees that a restart made progress.
        wait = min(1.0, stats_every_s)
        while not done.wait(wait):
            _send_stats(pipe, detector, camera.name)
            wait = stats_every_s

    threading.Thread(target=report_stats, daemon=True).start()

    def watch_parent() -> None:  # the supervisor said stop, closed the pipe or died: stop cleanly
        try:
            while not stop.is_set():
                if conn.poll(0.5) and conn.recv() == "stop":
                    break
        except (EOFError, OSError):
            pass
        stop.set()  # the pipeline ends at its next frame or window, closing its events

    threading.Thread(target=watch_parent, daemon=True).start()
    signalled: list[str] = []

    def on_signal(signum, frame) -> None:
        # Greengrass stops a component by signalling its whole process tree, and Ctrl-C
        # reaches every process of the terminal's group: both are a stop, not a crash. The
        # first one stops the pipeline where it can still end its open events; a second
        # one (the supervisor's terminate after its grace) stops it at once.
        if signalled:
            raise _Stopped(signal.Signals(signum).name)
        signalled.append(signal.Signals(signum).name)
        # Set from another thread: the main thread may hold ``stop``'s lock right now.
        threading.Thread(target=stop.set, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    log = logging.getLogger(__name__)
    try:
        report = detector.run(camera, stop)
        if signalled:
            log.info("camera %s: stopped (%s)", camera.name, signalled[0])
        if signalled or (replay and report.stopped):
            code = EXIT_STOPPED
    except SourceError as exc:
        log.error("camera %s: %s", camera.name, exc)
        pipe.send_stats({"last_error": str(exc)})
        code = EXIT_SOURCE_ERROR
    except _Stopped as why:
        log.warning("camera %s: stopped at once (second %s); its open events got no end", camera.name, why)
        code = EXIT_STOPPED
    finally:
        done.set()
        for sig in (signal.SIGTERM, signal.SIGINT):  # the final stats must get out
            signal.signal(sig, signal.SIG_IGN)
        _send_stats(pipe, detector, camera.name)
    if code:
        os._exit(code)


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
