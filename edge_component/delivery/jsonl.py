"""Alerts as JSON lines, for local runs and the demo."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import IO, Any

from .publisher import PublishError


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
