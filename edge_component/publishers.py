"""Publishers: where alert and telemetry messages go.

Every publisher has ``publish(topic, message) -> None`` and raises
:class:`PublishError` when the message was not accepted (so the caller keeps it).

- :class:`JsonLinesPublisher` for local runs: one JSON object per line,
  ``{"topic": ..., "message": {...}}``, to a file or stdout.
- :class:`GreengrassIpcPublisher` on a device: ``GreengrassCoreIPCClientV2.publish_to_iot_core``
  with QoS 1 (awsiotsdk), through the Greengrass nucleus to AWS IoT Core.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import IO, Any, Protocol


class PublishError(RuntimeError):
    """The message was not accepted by the transport; it must be kept and retried."""


class Publisher(Protocol):
    def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonLinesPublisher:
    """Appends ``{"topic", "message"}`` lines to ``path`` (or stdout when ``path`` is None)."""

    def __init__(self, path: str | Path | None = None):
        self._lock = threading.Lock()
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = self.path.open("a", encoding="utf-8") if self.path else sys.stdout

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        line = json.dumps({"topic": topic, "message": message}, separators=(",", ":"))
        with self._lock:
            try:
                self._fh.write(line + "\n")
                self._fh.flush()
            except (OSError, ValueError) as exc:
                raise PublishError(f"cannot write alert line: {exc}") from exc

    def close(self) -> None:
        if self._fh is not sys.stdout:
            self._fh.close()


class GreengrassIpcPublisher:
    """Publishes to AWS IoT Core through the Greengrass nucleus (QoS 1).

    ``client`` is a ``GreengrassCoreIPCClientV2`` (created once by ``__main__`` and
    handed in, so tests pass a fake with the same method). The recipe's
    ``accessControl`` must allow ``aws.greengrass#PublishToIoTCore`` on the topic.
    """

    def __init__(self, client: Any):
        self._client = client

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        try:
            from awsiot.greengrasscoreipc.model import QOS
            qos = QOS.AT_LEAST_ONCE
        except ImportError:  # the fake client in tests accepts the string value
            qos = "1"
        payload = json.dumps(message, separators=(",", ":")).encode("utf-8")
        try:
            self._client.publish_to_iot_core(topic_name=topic, qos=qos, payload=payload)
        except Exception as exc:  # the SDK raises many error types; all mean "not sent"
            raise PublishError(f"publish_to_iot_core({topic}) failed: {exc}") from exc

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close:
            close()
