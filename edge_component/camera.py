"""One camera through every stage: capture -> analysis (windows) -> model scores ->
objects -> events -> snapshots and alert messages.

:class:`CameraPipeline` wires the stages for one camera at a time: it opens the
camera's :class:`~edge_component.capture.feed.Feed`, turns its frames into windows
(:func:`~edge_component.analysis.windows.analyse_frames`) and scores every window with
the model bundle. A zone watching objects (default ``[person]``) gets events from tracks
(:class:`~edge_component.objects.stage.ObjectStage` on the motion of windows the model
scores at least the gate, then :class:`~edge_component.events.objects.ObjectEvents`); a
``motion_only`` zone from the scores (:class:`~edge_component.events.decision.EventTracker`).
Every transition goes to the publisher as a valid alert on ``vigil/<thing>/alerts``.
A live camera whose stream is lost ends its open events at once (``end_reason``
``camera_offline``); motion after the stream returns opens new ones.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from .analysis.motion import MotionAnalyzer
from .analysis.windows import Window, analyse_frames
from .camera_report import CameraReport
from .capture.feed import Feed, open_live, open_replay
from .capture.frames import StreamLost
from .capture.source import media_duration_s
from .config import CameraConfig, ComponentConfig, is_live, redact_source
from .contracts.topics import alert_topic
from .delivery.publisher import Publisher, PublishError
from .events.alerts import build_alert
from .events.decision import END_CAMERA_OFFLINE, END_STOPPED, EventTracker, Transition, random_event_id
from .events.objects import ObjectEvents, ObjectTransition
from .events.snapshots import SnapshotStore, annotate, caption_for
from .events.window_sample import WindowSample
from .model.bundle import ModelBundle
from .objects.detector import ObjectDetector, check_record
from .objects.stage import ObjectStage

log = logging.getLogger(__name__)


@dataclass
class _Best:
    score: float
    window: Window
    image: np.ndarray | None = None  # BGR, when the window's frame was analysed as luma only
    saved_as: str = ""  # snapshot file name once written


class CameraPipeline:
    """Runs cameras of ``config`` one at a time and publishes their alerts through
    ``publisher``; ``reports`` holds the latest :class:`CameraReport` per camera."""

    def __init__(
        self,
        config: ComponentConfig,
        bundle: ModelBundle,
        publisher: Publisher,
        *,
        thing_name: str,
        snapshots: SnapshotStore | None = None,
        detector: ObjectDetector | None = None,
    ):
        self.config = config
        self.bundle = bundle
        self.publisher = publisher
        self.thing_name = thing_name
        self.topic = alert_topic(thing_name)  # validates the thing name up front
        self.snapshots = snapshots
        self.threshold = config.decision.threshold if config.decision.threshold is not None else bundle.threshold
        self.reports: dict[str, CameraReport] = {}  # latest per camera, for telemetry
        self._object_detector = detector
        self._object_snapshots: dict[str, str] = {}  # event id -> snapshot file of its start
        self._samples: dict[str, tuple[str, WindowSample]] = {}  # open event id -> (zone, its windows)
        if detector is not None or any(not z.motion_only for c in config.cameras for z in c.zones):
            self._detector()  # before the first frame

    def run(self, camera: CameraConfig, stop: threading.Event | None = None) -> CameraReport:
        """Watch one camera: replay a file (mode auto/replay) or follow a live source
        until ``stop`` is set (mode auto/live). A replay also ends when ``stop`` is set
        (``report.stopped``). Either way the events still open end with ``end_reason``
        ``stopped``. Returns what happened."""
        if camera.mode == "replay" or (camera.mode == "auto" and not is_live(camera.source)):
            return self.run_replay(camera, stop=stop)
        return self.run_live(camera, stop or threading.Event())

    def run_replay(
        self, camera: CameraConfig, origin: datetime | None = None, stop: threading.Event | None = None
    ) -> CameraReport:
        """Replay a file source in media order; returns what happened. Raises SourceError.

        ``origin`` is the UTC time the recording started; alert times and the armed
        schedule are reckoned from it. Default: as if the recording ended now, so no
        alert carries a time in the future. ``stop`` set: the replay ends at its next
        window (``report.stopped`` True), its open events ended as ``stopped``."""
        if is_live(camera.source):
            raise ValueError(
                f"camera {camera.name}: {redact_source(camera.source)!r} is a live source; replay takes files"
            )
        if origin is None:
            origin = datetime.now(UTC) - timedelta(seconds=media_duration_s(camera.source))
        # A replay analyses luma only; a snapshot's frame is decoded in colour when needed.
        # The detector and snapshots need colour: decoded again for the frames they use.
        colour = self.snapshots is not None or any(not z.motion_only for z in camera.zones)
        feed = open_replay(camera.source, self.config.detection_fps, colour=colour)
        try:
            key = f"{self.thing_name}|{camera.name}|{feed.identity}"
            return self._run(camera, feed, origin=origin, replay_key=key, stop=stop)
        finally:
            feed.close()

    def run_live(self, camera: CameraConfig, stop: threading.Event) -> CameraReport:
        """Follow a live source until ``stop`` is set; a failing source is reopened with
        backoff (see capture.live), never raised."""
        feed = open_live(
            camera.source,
            self.config.detection_fps,
            stop=stop,
            read_timeout_s=camera.read_timeout_s,
            backoff_max_s=camera.backoff_max_s,
        )
        return self._run(camera, feed, stop=stop)

    def _detector(self) -> ObjectDetector:
        # One per pipeline (camera worker), checked against the bundle's manifest.
        if self._object_detector is None:
            self._object_detector = ObjectDetector()
        check_record(self.bundle.manifest.model.detector, self._object_detector)
        return self._object_detector

    def _run(
        self,
        camera: CameraConfig,
        feed: Feed,
        *,
        origin: datetime | None = None,
        replay_key: str | None = None,
        stop: threading.Event | None = None,
    ) -> CameraReport:
        report = CameraReport(camera.name, feed.stats)
        media_time, self.reports[camera.name] = feed.media_time, report

        def ids_for(zone: str):
            if replay_key is None:
                return random_event_id
            return lambda started_s: uuid.uuid5(uuid.NAMESPACE_URL, f"vigil:{replay_key}|{zone}|{started_s:.3f}").hex

        zones = camera.zones
        trackers = [EventTracker(self.config.decision, self.threshold, ids_for(z.name)) for z in zones]
        best: list[_Best | None] = [None] * len(zones)  # best window of the current run or event, per zone
        stage = objects = None
        if any(not z.motion_only for z in zones):
            stage = ObjectStage(zones, self.config.object_detection, self._detector(), self.threshold)
            objects = ObjectEvents(
                zones, self.config.decision, lambda z, tid, t: ids_for(f"{zones[z].name}|track{tid}")(t)
            )
        origin = origin or datetime.now(UTC)
        started = time.perf_counter()
        last_t = 0.0
        analyzer = MotionAnalyzer(self.config.motion, zones, camera.masks, self.config.detection_fps)
        pending: list[tuple[Window, float]] = []  # this frame's windows and scores, until its last zone

        def close(time_s: float, reason: str, clock_origin: datetime, ended_s: float | None = None) -> None:
            """End every open event of the camera now, for ``reason`` (END_*)."""
            for z, tracker in enumerate(trackers):
                for tr in tracker.close(time_s, reason, ended_s):
                    self._emit(tr, camera, best[z], clock_origin, report, media_time, zones[z].name)
                best[z] = None
            if stage is not None:
                for ot in objects.close(stage.end_all(), time_s, reason, ended_s):
                    self._emit_object(ot, camera, None, stage.frame_shape, clock_origin, report, media_time)

        for window in analyse_frames(feed.frames, camera, self.config, analyzer):
            if stop is not None and stop.is_set():
                # Told to stop (a live feed ends by itself; a replay does not look): the
                # open events still get their end below, before the worker exits.
                report.stopped = True
                break
            if isinstance(window, StreamLost):
                # A camera unplugged mid-event: end its events now, not when the stream returns.
                origin = datetime.fromtimestamp(window.wall_s, UTC) - timedelta(seconds=window.time_s)
                log.warning("camera %s: stream lost (%s); closing its open events", camera.name, window.error)
                close(window.time_s, END_CAMERA_OFFLINE, origin, window.last_frame_s)
                continue
            last_t = window.frame.time_s
            if window.frame.wall_s is not None:  # live: dates follow the wall clock now, also after it steps
                origin = datetime.fromtimestamp(window.frame.wall_s, UTC) - timedelta(seconds=last_t)
            report.blank_frames, report.recalibrations = analyzer.blank_frames, analyzer.recalibrations
            t0 = time.perf_counter()
            score = float(self.bundle.scorer.score(window.features)[0])
            report.inference_s += time.perf_counter() - t0
            report.windows += 1
            if not 0.0 <= score <= 1.0:  # NaN included; load_bundle's probe makes this rare
                report.invalid_scores += 1
                if report.invalid_scores == 1 or report.invalid_scores % 1000 == 0:
                    msg = "camera %s: model gave %r, not a probability (%d such windows); window skipped"
                    log.error(msg, camera.name, score, report.invalid_scores)
                score = -1.0  # neither an event nor a reason to look
            armed = camera.armed is None or camera.armed.is_armed(origin + timedelta(seconds=window.frame.time_s))
            z = window.zone_index
            if zones[z].motion_only and score >= 0.0:
                self._motion_window(
                    window, 0.0 if not armed else score, trackers[z], best, z, feed, report, camera, origin
                )
            pending.append((window, score))
            if z == len(zones) - 1:
                if stage is not None:
                    self._objects_frame(pending, stage, objects, feed, report, camera, origin, armed)
                for w, _ in pending:  # after this frame's transitions, so a start's window counts
                    for zone_name, sample in self._samples.values():
                        if zone_name == zones[w.zone_index].name:
                            sample.add(w.features)
                pending = []
            report.wall_s = time.perf_counter() - started
        close(last_t, END_STOPPED, origin)
        if stage is not None:
            report.detector_calls, report.detect_s = stage.counters.calls, stage.counters.detect_s
            report.detected_frames = stage.counters.frames_detected
        report.wall_s = time.perf_counter() - started
        return report

    def _motion_window(self, window, score, tracker, best, z, feed, report, camera, origin) -> None:  # motion only
        if score >= self.threshold and (best[z] is None or score > best[z].score):
            best[z] = _Best(score, window)  # frames are fresh arrays: holding one costs no copy
            if self.snapshots is not None and window.frame.image is None:
                # Decoded now, while frames come in order, so the file is only ever read forward.
                best[z].image = feed.colour(window.frame)
        elif tracker.active is None and score < self.threshold:
            best[z] = None  # the run broke before it became an event
        for tr in tracker.update(window.frame.time_s, score):
            self._emit(tr, camera, best[z], origin, report, feed.media_time, camera.zones[z].name)
            if tr.kind == "end":
                best[z] = None

    def _objects_frame(self, pending, stage, objects, feed, report, camera, origin, armed) -> None:
        """One analysed frame through the detection stage and the object events."""
        frame = pending[0][0].frame
        shape = frame.luma.shape[:2]
        boxes = [b for w, score in pending if stage.wants(w.zone_index, score, w.stats.boxes) for b in w.stats.boxes]
        regions = stage.regions(boxes, shape)
        image = None
        if regions:
            t0 = time.perf_counter()
            image = feed.colour(frame)
            if image is None:
                image = frame.colour()  # the file changed under the replay: grey beats nothing
            report.colour_s += time.perf_counter() - t0
        update = stage.update(image, regions, frame.time_s)
        for ot in objects.update(update, frame.time_s, shape, armed):
            self._emit_object(ot, camera, image, shape, origin, report, feed.media_time)

    def _emit(
        self,
        tr: Transition,
        camera: CameraConfig,
        best: _Best | None,
        origin: datetime,
        report: CameraReport,
        media_time: bool,
        zone: str,
    ) -> None:
        """Publish one transition. The snapshot is the best-scoring frame so far: the
        start carries the best of the windows that started the event; a later message
        carries a new snapshot only if a better frame came since. A frame analysed as
        luma only was decoded in colour when it became the best (``_Best.image``); if
        that failed, the snapshot is its grey image (evidence in grey beats none)."""
        snapshot_file = None
        if best is not None and self.snapshots is not None and not best.saved_as:
            suffix = "" if tr.kind == "start" else f"-{tr.event.sequence}"
            name = f"{camera.name}-{tr.event.event_id}{suffix}.jpg"
            w = best.window
            label = f"{camera.name}/{zone} score {best.score:.2f} >= {self.threshold:.2f}  t={w.frame.time_s:.1f}s"
            image = w.frame.image if w.frame.image is not None else best.image
            if image is None:
                image = w.frame.colour()
            try:
                self.snapshots.save(
                    name, annotate(image, camera.zones, camera.masks, w.stats.boxes, label), camera.privacy_masks
                )
                best.saved_as = name
            except (OSError, RuntimeError) as exc:
                # Evidence is worth less than the alert: send the alert without it.
                report.snapshot_errors += 1
                log.error("snapshot %s not saved (%s); the alert goes without it", name, exc)
        if best is not None and best.saved_as:
            snapshot_file = best.saved_as
        msg = build_alert(
            tr,
            thing_name=self.thing_name,
            camera=camera.name,
            zone=zone,
            threshold=self.threshold,
            clock_origin=origin,
            media_time=media_time,
            model_sha256=self.bundle.sha256,
            snapshot_file=snapshot_file,
            features=self._features(tr, zone),
        )
        self._publish(msg, report)

    def _features(self, tr: Transition, zone: str, label: tuple[str, float] | None = None) -> dict | None:
        """Open an event's window sample on its start; its end message's ``features``
        (windows sampled while it was open, and the object's label and score) on its end."""
        if tr.kind == "start":
            self._samples[tr.event.event_id] = (zone, WindowSample())
        if tr.kind != "end":
            return None
        _, sample = self._samples.pop(tr.event.event_id, (zone, WindowSample()))
        return sample.message_part([label] if label else None)

    def _publish(self, msg: dict[str, Any], report: CameraReport) -> None:
        try:
            self.publisher.publish(self.topic, msg)
            report.alerts.append(msg)
        except PublishError as exc:
            log.error("alert %s/%s not published: %s", msg["event_id"], msg["event_type"], exc)
            report.failed.append(msg)
        log.info(
            "%s %s/%s event %s at %s (score %.2f%s)",
            msg["event_type"],
            msg["camera"],
            msg["zone"],
            msg["event_id"][:8],
            msg.get("media_offset_s", msg["sent_at"]),
            msg["score"],
            f", {msg['label']}" if "label" in msg else "",
        )

    def _emit_object(
        self,
        ot: ObjectTransition,
        camera: CameraConfig,
        image: np.ndarray | None,
        shape: tuple[int, int],
        origin: datetime,
        report: CameraReport,
        media_time: bool,
    ) -> None:
        """Publish one object event's transition: the start with a snapshot of the frame
        that confirmed the object (its box, label and score drawn), later messages with
        the same snapshot."""
        tr, track, zone = ot.transition, ot.track, camera.zones[ot.zone_index]
        ev = tr.event
        if tr.kind == "start" and image is not None and self.snapshots is not None:
            name = f"{camera.name}-{ev.event_id}.jpg"
            caption = caption_for(camera.name, zone.name, track.label, track.score, tr.time_s)
            drawn = [(track.label, track.score, track.box)]
            try:
                self.snapshots.save(
                    name, annotate(image, [zone], camera.masks, (), caption, objects=drawn), camera.privacy_masks
                )
                self._object_snapshots[ev.event_id] = name
            except (OSError, RuntimeError) as exc:
                report.snapshot_errors += 1
                log.error("snapshot %s not saved (%s); the alert goes without it", name, exc)
        snapshot_file = (self._object_snapshots.pop if tr.kind == "end" else self._object_snapshots.get)(
            ev.event_id, None
        )
        (h, w), box = shape, track.box
        msg = build_alert(
            tr,
            thing_name=self.thing_name,
            camera=camera.name,
            zone=zone.name,
            threshold=ot.threshold,
            clock_origin=origin,
            media_time=media_time,
            model_sha256=self.bundle.sha256,
            snapshot_file=snapshot_file,
            label=track.label,
            box=[box[0] / w, box[1] / h, box[2] / w, box[3] / h],
            features=self._features(tr, zone.name, (track.label, track.score)),
        )
        self._publish(msg, report)
