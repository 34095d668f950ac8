"""Frames and prefetch (edge_component/capture/frames.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_component.capture.replay import replay
from edge_component.capture.source import SourceError

REPO = Path(__file__).resolve().parents[3]
CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"


def test_prefetch_keeps_order_and_raises_the_readers_error(tmp_path):
    from edge_component.capture.frames import prefetch

    direct = [f.index for f in replay(str(CLIP), 5.0)]
    ahead = [f.index for f in prefetch(replay(str(CLIP), 5.0))]
    assert ahead == direct
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError):
        list(prefetch(replay(str(junk), 5.0)))
