"""Fixtures of the edge tests: the example clip's ground truth and its windows (one
replay per session, shared by the capture and analysis tests), and a fake Greengrass
IPC client (``FakeIpcClient``)."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest

from edge_component.analysis.windows import analyse_source
from edge_component.capture.frames import CaptureStats
from edge_component.config import parse_config

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def _ground_truth() -> list[tuple[float, float]]:
    raw = json.loads(LABELS.read_text())
    return [(iv["start_s"], iv["end_s"]) for iv in raw["abnormal"]]


@pytest.fixture(scope="session")
def ground_truth():
    """``ground_truth()``: (start_s, end_s) of each intrusion in the example clip."""
    return _ground_truth


@pytest.fixture(scope="session")
def windows():
    """(time_s, features) of every window of the example clip, one zone over the whole
    frame, and the replay's CaptureStats."""
    cfg = parse_config({"cameras": [{"name": "c", "source": str(CLIP), "zones": [{"name": "room", "polygon": WHOLE}]}]})
    stats = CaptureStats()
    ws = [(w.frame.time_s, w.features) for w in analyse_source(cfg.cameras[0], cfg, stats)]
    return ws, stats


class _FakeIpcClient:
    """The methods of awsiot's ``GreengrassCoreIPCClientV2`` that the component uses,
    with the SDK's signatures (awsiot/greengrasscoreipc/clientv2.py), and the events
    built from the SDK's own model classes.

    ``deploy(config)`` acts as the nucleus does for a cloud deployment: it sends the
    whole new configuration to the validation subscribers, waits for their report
    (``send_configuration_validity_report``), and only if none rejected it stores the
    new configuration and sends one update event per changed leaf (a list is one leaf:
    aws-greengrass-nucleus ConfigStoreIPCEventStreamAgent). ``deploy(config, local=True)``
    skips validation, as a local deployment does. Callbacks run on their own threads, as
    the SDK runs them on its executor.
    """

    def __init__(self, configuration):
        self.configuration = configuration
        self.published = []
        self.reports = []
        self.get_calls = 0
        self._validators, self._updaters = [], []
        self._reported = threading.Condition()

    def get_configuration(self, *, component_name=None, key_path=None):
        from awsiot.greengrasscoreipc.model import GetConfigurationResponse

        self.get_calls += 1
        return GetConfigurationResponse(component_name=component_name, value=copy.deepcopy(self.configuration))

    def publish_to_iot_core(self, *, topic_name, qos, payload):
        self.published.append((topic_name, str(qos), json.loads(payload)))

    def subscribe_to_validate_configuration_updates(
        self, *, stream_handler=None, on_stream_event=None, on_stream_error=None, on_stream_closed=None
    ):
        self._validators.append(on_stream_event)
        return object(), _FakeOperation()

    def subscribe_to_configuration_update(
        self,
        *,
        component_name=None,
        key_path=None,
        stream_handler=None,
        on_stream_event=None,
        on_stream_error=None,
        on_stream_closed=None,
    ):
        self._updaters.append(on_stream_event)
        return object(), _FakeOperation()

    def send_configuration_validity_report(self, *, configuration_validity_report=None):
        with self._reported:
            self.reports.append(configuration_validity_report)
            self._reported.notify_all()

    def deploy(self, configuration, *, deployment_id="deployment-1", local=False, timeout_s=20.0) -> bool:
        """Deploy ``configuration``; True if applied, False if a validator rejected it."""
        from awsiot.greengrasscoreipc import model

        if not local and self._validators:
            event = model.ValidateConfigurationUpdateEvents(
                validate_configuration_update_event=model.ValidateConfigurationUpdateEvent(
                    configuration=copy.deepcopy(configuration), deployment_id=deployment_id
                )
            )
            seen = len(self.reports)
            for handler in self._validators:
                threading.Thread(target=handler, args=(event,), daemon=True).start()
            with self._reported:  # the nucleus waits for the reports (20 s by default)
                self._reported.wait_for(lambda: len(self.reports) >= seen + len(self._validators), timeout_s)
            if any(r.status == model.ConfigurationValidityStatus.REJECTED for r in self.reports[seen:]):
                return False
        changed = _changed_leaves(self.configuration, configuration)
        self.configuration = copy.deepcopy(configuration)
        for path in changed:
            event = model.ConfigurationUpdateEvents(
                configuration_update_event=model.ConfigurationUpdateEvent(component_name="vigil", key_path=path)
            )
            for handler in self._updaters:
                threading.Thread(target=handler, args=(event,), daemon=True).start()
        return True

    def close(self):
        pass


class _FakeOperation:
    def close(self):
        pass


def _changed_leaves(old, new, path=()):
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _changed_leaves(old.get(key), new.get(key), (*path, key))
        return out
    return [list(path)] if old != new else []


@pytest.fixture
def FakeIpcClient():
    """The fake Greengrass IPC client class (see ``_FakeIpcClient``)."""
    return _FakeIpcClient


def clip_excerpt(path: Path, *, frames: int, start: int = 0) -> Path:
    """Write ``frames`` frames of the real clip (10 fps, 768x432), from frame ``start``, to
    ``path`` as MJPG at 10 fps; returns ``path``. Asserts the clip has that many."""
    import cv2

    cap = cv2.VideoCapture(str(CLIP))
    if start:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 432))
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok
        out.write(frame)
    out.release()
    cap.release()
    return path


@pytest.fixture(scope="session")
def live_clip(tmp_path_factory):
    """The first 2 s (20 frames) of the real clip at 10 fps, re-encoded: in live mode a
    file plays in real time and is reopened when it ends, as a camera stream would be."""
    return clip_excerpt(tmp_path_factory.mktemp("live") / "short.avi", frames=20)
