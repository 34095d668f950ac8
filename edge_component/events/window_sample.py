"""An event's window feature vectors, evenly sampled and bounded, for its end message.

The end message carries the MLP's input features of the event's windows (numbers only,
never pictures), so a user's verdict on the event can become labelled training rows in
the cloud. An event may last hours: :class:`WindowSample` keeps at most
``2 * MAX_WINDOWS`` vectors at any time (every ``stride``-th window, the stride doubling
when the buffer fills) and hands back at most :data:`MAX_WINDOWS`, evenly spaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge_component.analysis.features import FEATURE_VERSION

MAX_WINDOWS = 32  # the schema's maxItems; 32 x 8 features stay near 2.5 KB of JSON
SIGNIFICANT_DIGITS = 6  # as training.dataset writes its CSVs


@dataclass(slots=True)
class WindowSample:
    """Windows of one event: ``add(features)`` per window (float array, shape
    ``(N_FEATURES,)``), ``message_part(labels)`` for the end message."""

    stride: int = 1
    _seen: int = 0
    _kept: list[list[float]] = field(default_factory=list)

    def add(self, features: np.ndarray) -> None:
        if self._seen % self.stride == 0:
            self._kept.append([float(f"{float(v):.{SIGNIFICANT_DIGITS}g}") for v in features])
            if len(self._kept) >= 2 * MAX_WINDOWS:
                self._kept = self._kept[::2]  # memory stays bounded; spacing stays even
                self.stride *= 2
        self._seen += 1

    def windows(self) -> list[list[float]]:
        """At most :data:`MAX_WINDOWS` vectors, evenly spaced over the event."""
        n = len(self._kept)
        if n <= MAX_WINDOWS:
            return list(self._kept)
        return [self._kept[i] for i in np.linspace(0, n - 1, MAX_WINDOWS).round().astype(int)]

    def message_part(self, labels: list[tuple[str, float]] | None = None) -> dict[str, Any]:
        """The end message's ``features``: ``{"feature_version": int, "windows": [[...]],
        "labels": [{"label", "score"}]}`` (labels only for object events)."""
        part: dict[str, Any] = {"feature_version": FEATURE_VERSION, "windows": self.windows()}
        if labels:
            part["labels"] = [{"label": lb, "score": round(float(s), 4)} for lb, s in labels]
        return part
