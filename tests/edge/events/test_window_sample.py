import numpy as np

from edge_component.analysis.features import FEATURE_VERSION, N_FEATURES
from edge_component.events.window_sample import MAX_WINDOWS, WindowSample


def test_a_long_event_keeps_at_most_32_evenly_spaced_windows():
    sample = WindowSample()
    for i in range(1000):
        sample.add(np.full(N_FEATURES, i, np.float32))
    part = sample.message_part([("person", 0.87654)])
    firsts = [w[0] for w in part["windows"]]
    assert len(firsts) == MAX_WINDOWS and firsts[0] == 0 and firsts[-1] > 900
    gaps = np.diff(firsts)
    assert gaps.max() - gaps.min() <= max(gaps.min(), 1)  # spacing even within a stride
    assert part["feature_version"] == FEATURE_VERSION
    assert part["labels"] == [{"label": "person", "score": 0.8765}]
