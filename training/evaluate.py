"""Evaluate the component on labelled clips: events found and missed, false alerts per
hour of footage, and the delay from each event's start to its alert.

    python -m training.evaluate examples/labels/*.json --model-dir edge_component/models/seed

Each label file (format: ``training/labels.py``) names a clip, its zones and the
abnormal intervals. The clip is replayed through the real camera pipeline (same code as
on a device); each 'start' alert is matched to the interval it falls in. An interval with
one alert within ``--max-delay`` seconds of its start is *found*; one with no alert is
*missed*; alerts outside every interval are *false alerts*, and extra alerts inside an
interval are *duplicates*. The same counts are reported per zone and label
(:func:`breakdown`): an alert that names a label (an object zone's) counts against the
intervals labelled so; a motion-only zone's alert against the interval it falls in.
Part of training, not of the component: it needs the label reader
(``training/labels.py``), which the device does not carry.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_component.camera import CameraPipeline
from edge_component.config import CameraConfig, ComponentConfig
from edge_component.model.bundle import load_bundle, read_manifest
from training.labels import load_labels  # the label format's one home


@dataclass
class IntervalResult:
    start_s: float
    end_s: float
    alerts_at_s: list[float]

    @property
    def found(self) -> bool:
        return bool(self.alerts_at_s)

    @property
    def delay_s(self) -> float | None:
        return self.alerts_at_s[0] - self.start_s if self.alerts_at_s else None


@dataclass
class ClipResult:
    clip: str
    duration_s: float
    intervals: list[IntervalResult]
    false_alerts_at_s: list[float]
    max_delay_s: float
    groups: dict[str, ClipResult] = field(default_factory=dict)  # "zone/label" -> its result
    labels: dict[str, ClipResult] = field(default_factory=dict)  # "label" -> its result, every zone's alerts

    @property
    def found(self) -> int:
        return sum(1 for r in self.intervals if r.found and r.delay_s <= self.max_delay_s)

    @property
    def late(self) -> int:
        return sum(1 for r in self.intervals if r.found and r.delay_s > self.max_delay_s)

    @property
    def missed(self) -> int:
        return sum(1 for r in self.intervals if not r.found)

    @property
    def duplicates(self) -> int:
        return sum(max(0, len(r.alerts_at_s) - 1) for r in self.intervals)

    def summary(self) -> dict[str, Any]:
        delays = [r.delay_s for r in self.intervals if r.found]
        hours = self.duration_s / 3600.0
        return {
            "clip": self.clip,
            "duration_s": round(self.duration_s, 1),
            "events": len(self.intervals),
            "found": self.found,
            "late": self.late,
            "missed": self.missed,
            "duplicates": self.duplicates,
            "false_alerts": len(self.false_alerts_at_s),
            "false_alerts_per_hour": round(len(self.false_alerts_at_s) / hours, 2) if hours else 0.0,
            "delay_s_mean": round(sum(delays) / len(delays), 2) if delays else None,
            "delay_s_max": round(max(delays), 2) if delays else None,
            "intervals": [{**asdict(r), "delay_s": r.delay_s} for r in self.intervals],
            "false_alerts_at_s": self.false_alerts_at_s,
            **({"by_zone_label": {k: g.summary() for k, g in self.groups.items()}} if self.groups else {}),
        }


def match_alerts(
    alert_times_s: Sequence[float],
    intervals: Sequence[tuple[float, float]],
    duration_s: float,
    clip: str = "",
    max_delay_s: float = 2.0,
) -> ClipResult:
    """Match 'start' alert media times (s) to labelled (start_s, end_s) intervals."""
    results = [IntervalResult(a, b, []) for a, b in intervals]
    false = []
    for t in sorted(alert_times_s):
        for r in results:
            if r.start_s <= t < r.end_s:
                r.alerts_at_s.append(t)
                break
        else:
            false.append(t)
    return ClipResult(clip, duration_s, results, false, max_delay_s)


def breakdown(
    starts: Sequence[dict[str, Any]],
    intervals: Sequence[tuple[float, float, str | None]],
    zones: Sequence[str],
    duration_s: float,
    clip: str = "",
    max_delay_s: float = 2.0,
) -> dict[str, ClipResult]:
    """Per ``zone/label``: ``starts`` (alert messages: ``zone``, ``media_offset_s``, an
    object's ``label``) matched to ``intervals`` (start_s, end_s, label or None: shown as
    ``any``). An alert without a label takes the label of the interval it falls in."""

    def label_at(t: float) -> str:
        return next((lab or "any" for a, b, lab in intervals if a <= t < b), "any")

    labels = sorted({lab or "any" for *_, lab in intervals} | {a.get("label", "any") for a in starts})
    out = {}
    for zone in zones:
        for label in labels:
            times = [
                a["media_offset_s"]
                for a in starts
                if a["zone"] == zone and a.get("label", label_at(a["media_offset_s"])) == label
            ]
            spans = [(a, b) for a, b, lab in intervals if (lab or "any") == label]
            out[f"{zone}/{label}"] = match_alerts(times, spans, duration_s, clip, max_delay_s)
    return out


def evaluate_clip(
    label_file: str | Path, bundle_dir: str | Path, base: ComponentConfig | None = None, max_delay_s: float = 2.0
) -> ClipResult:
    """Replay one labelled clip through the detector and match its alerts."""
    labels, clip = load_labels(label_file)
    camera = CameraConfig(
        name=labels.camera.name, source=str(clip), zones=labels.camera.zones, masks=labels.camera.masks
    )
    config = (base or ComponentConfig(cameras=[camera])).model_copy(update={"cameras": [camera]})

    class _Discard:
        def publish(self, topic, message):
            pass

        def close(self):
            pass

    report = CameraPipeline(
        config, load_bundle(bundle_dir, config.model_file), _Discard(), thing_name="evaluation"
    ).run_replay(camera)
    duration = report.stats.frames_in / report.stats.fps if report.stats.fps else 0.0
    starts = [a["media_offset_s"] for a in report.starts]
    result = match_alerts(starts, [(iv.start_s, iv.end_s) for iv in labels.abnormal], duration, clip.name, max_delay_s)
    spans = [(iv.start_s, iv.end_s, iv.label) for iv in labels.abnormal]
    result.groups = breakdown(report.starts, spans, [z.name for z in camera.zones], duration, clip.name, max_delay_s)
    # Per label over the whole camera: an interval is found when any zone alerted it, so
    # a camera with two zones does not count one event twice.
    anywhere = [{**a, "zone": "*"} for a in report.starts]
    result.labels = {
        key.split("/", 1)[1]: r
        for key, r in breakdown(anywhere, spans, ["*"], duration, clip.name, max_delay_s).items()
    }
    return result


def figures(results: Sequence[ClipResult]) -> dict[str, Any]:
    """The loop's figures over ``results`` (clips pooled, not averaged):

    ``recall``: events found within the clip's max delay / events (1.0 when there are
    no events: nothing was missed); ``false_alerts_per_hour``: alerts outside every
    interval per hour of footage (0.0 for no footage); ``delay_s_mean``: mean delay (s)
    from an event's start to its first alert over the events that got one, or None.
    Also the counts ``events``, ``found``, ``false_alerts`` and ``hours``.
    """
    events = sum(len(r.intervals) for r in results)
    found = sum(r.found for r in results)
    false = sum(len(r.false_alerts_at_s) for r in results)
    hours = sum(r.duration_s for r in results) / 3600.0
    delays = [iv.delay_s for r in results for iv in r.intervals if iv.delay_s is not None]
    return {
        "recall": round(found / events, 4) if events else 1.0,
        "false_alerts_per_hour": round(false / hours, 2) if hours else 0.0,
        "delay_s_mean": round(sum(delays) / len(delays), 2) if delays else None,
        "events": events,
        "found": found,
        "false_alerts": false,
        "hours": round(hours, 4),
    }


def score_bundle(
    label_files: Sequence[str | Path],
    bundle_dir: str | Path,
    base: ComponentConfig | None = None,
    max_delay_s: float = 2.0,
) -> dict[str, Any]:
    """Replay every labelled clip with the bundle in ``bundle_dir`` (the edge's pipeline).

    Returns ``{"sha256": the manifest's model_file digest (what the edge reports),
    "total": FIGURES, "by_label": {label: FIGURES}, "clips": [summary]}`` (FIGURES:
    :func:`figures`; a label is every interval's label, ``any`` when unlabelled, and every
    label an alert named). ValueError when ``label_files`` is empty; ModelError when the
    bundle does not load; LabelError for a bad label file.
    """
    if not label_files:
        raise ValueError("no label files to evaluate on")
    results = [evaluate_clip(lf, bundle_dir, base, max_delay_s) for lf in label_files]
    labels = sorted({label for r in results for label in r.labels})
    return {
        "sha256": read_manifest(bundle_dir).model_sha256,
        "total": figures(results),
        # a clip with neither events nor alerts of a label still counts its hours for it
        "by_label": {
            label: figures(
                [r.labels.get(label) or ClipResult(r.clip, r.duration_s, [], [], r.max_delay_s) for r in results]
            )
            for label in labels
        },
        "clips": [{k: v for k, v in r.summary().items() if k not in ("intervals", "by_zone_label")} for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("labels", nargs="+", help="label files (JSON)")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--config", help="component configuration whose detection/decision settings to use")
    p.add_argument(
        "--max-delay", type=float, default=2.0, help="an alert later than this after the start is 'late' (s)"
    )
    p.add_argument("--json", help="also write the full report here")
    args = p.parse_args(argv)
    base = None
    if args.config:
        from edge_component.config import load_config

        base = load_config(args.config)
    results = [evaluate_clip(lf, args.model_dir, base, args.max_delay) for lf in args.labels]
    rows = [r.summary() for r in results]
    hours = sum(r.duration_s for r in results) / 3600.0
    total = {
        "events": sum(r["events"] for r in rows),
        "found": sum(r["found"] for r in rows),
        "late": sum(r["late"] for r in rows),
        "missed": sum(r["missed"] for r in rows),
        "duplicates": sum(r["duplicates"] for r in rows),
        "false_alerts": sum(r["false_alerts"] for r in rows),
    }
    total["false_alerts_per_hour"] = round(total["false_alerts"] / hours, 2) if hours else 0.0
    print(
        f"{'clip':<40} {'events':>6} {'found':>5} {'late':>4} {'missed':>6} {'dup':>3}"
        f" {'false':>5} {'false/h':>7} {'delay mean/max s':>17}"
    )
    for r in rows:
        delay = f"{r['delay_s_mean']}/{r['delay_s_max']}" if r["delay_s_mean"] is not None else "-"
        print(
            f"{r['clip']:<40} {r['events']:>6} {r['found']:>5} {r['late']:>4} {r['missed']:>6} {r['duplicates']:>3} "
            f"{r['false_alerts']:>5} {r['false_alerts_per_hour']:>7} {delay:>17}"
        )
    print(
        f"{'total':<40} {total['events']:>6} {total['found']:>5} {total['late']:>4} {total['missed']:>6} "
        f"{total['duplicates']:>3} {total['false_alerts']:>5} {total['false_alerts_per_hour']:>7}"
    )
    print(
        f"\n{'clip: zone/label':<40} {'events':>6} {'found':>5} {'late':>4} {'missed':>6} "
        f"{'dup':>3} {'false':>5} {'false/h':>7}"
    )
    for r in rows:
        for key, g in r.get("by_zone_label", {}).items():
            print(
                f"{r['clip'][:24] + ': ' + key:<40} {g['events']:>6} {g['found']:>5} {g['late']:>4} {g['missed']:>6} "
                f"{g['duplicates']:>3} {g['false_alerts']:>5} {g['false_alerts_per_hour']:>7}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": rows, "total": total}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
