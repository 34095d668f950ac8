"""``comparison.json``: the candidate and the model the stage runs now, scored on the
test channel's labelled clips with the edge's own pipeline (:func:`training.evaluate.score_bundle`).

The model loop's evaluate step reads it from the job's ``output.tar.gz`` (SageMaker
uploads ``SM_OUTPUT_DATA_DIR`` there) and its gate compares the two (shape:
``lambda/vigil_loop/evaluate.py``)::

    {"gates": {"<gate>": {"passed": bool, "failures": [str]}},
     "candidate": {"sha256", "total": FIGURES, "by_label": {label: FIGURES}, "clips": [...]},
     "current": same shape, or null when the job has no ``current`` channel}

The ``current`` channel (``SM_CHANNEL_CURRENT``) holds the stage's bundle: its files
(``manifest.json`` and the model files it lists), or one ``*.zip`` (the model
component's ``model-bundle.zip``) or ``*.tar.gz`` (a training job's ``model.tar.gz``)
holding them at its root. Both models are scored on the same clips, and each side's
``by_label`` holds every label either side has (a label only one model alerted on is a
row of zero events on the other), so the gate never mistakes "the candidate raised no
alert of that label" for "the candidate was not scored on it".
"""

from __future__ import annotations

import json
import logging
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge_component.contracts.manifest import MANIFEST_FILE
from edge_component.model.errors import ModelError
from training.evaluate import score_bundle

log = logging.getLogger("vigil.train")

COMPARISON_FILE = "comparison.json"
_EMPTY = {"recall": 1.0, "false_alerts_per_hour": 0.0, "delay_s_mean": None, "events": 0, "found": 0, "false_alerts": 0}


class ComparisonInputError(ValueError):
    """The test or current channel cannot be used for the comparison."""


def label_files(test: str | Path | None) -> list[Path]:
    """The test channel's label files (``*.json``, or the one file given); [] when the
    channel is absent or holds feature CSVs (they have no clips to replay)."""
    if test is None or str(test).lower() == "none":
        return []
    path = Path(test)
    if path.is_file():
        return [path] if path.suffix == ".json" else []
    return sorted(path.glob("*.json")) if path.is_dir() else []


def _extract(archive: Path, into: Path) -> None:
    names: list[str]
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            _check_names(archive, names)
            z.extractall(into)
    else:
        with tarfile.open(archive, "r:gz") as t:
            members = [m for m in t.getmembers() if not m.isdir()]
            if any(not m.isfile() for m in members):
                raise ComparisonInputError(f"{archive}: holds a link or device; a bundle holds plain files")
            _check_names(archive, [m.name.removeprefix("./") for m in members])
            t.extractall(into, members=members, filter="data")


def _check_names(archive: Path, names: list[str]) -> None:
    bad = [n for n in names if "/" in n.removeprefix("./") or n.startswith(("/", ".."))]
    if bad:
        raise ComparisonInputError(f"{archive}: {bad[0]!r} is not a file at the archive's root")


@contextmanager
def current_bundle(channel: str | Path | None) -> Iterator[Path | None]:
    """The current model's bundle directory from the ``current`` channel, or None when
    there is none (a stage's first model). ComparisonInputError when the channel holds
    neither a bundle nor exactly one bundle archive."""
    if channel is None or str(channel).lower() == "none":
        yield None
        return
    path = Path(channel)
    if (path / MANIFEST_FILE).is_file():
        yield path
        return
    archives = (
        sorted([*path.glob("*.zip"), *path.glob("*.tar.gz")]) if path.is_dir() else [path] if path.is_file() else []
    )
    if len(archives) != 1:
        found = ", ".join(a.name for a in archives) or "nothing"
        raise ComparisonInputError(
            f"current channel {path}: expected {MANIFEST_FILE} or one *.zip / *.tar.gz bundle, found {found}"
        )
    with tempfile.TemporaryDirectory(prefix="vigil-current-") as tmp:
        _extract(archives[0], Path(tmp))
        if not (Path(tmp) / MANIFEST_FILE).is_file():
            raise ComparisonInputError(f"{archives[0]}: no {MANIFEST_FILE} at its root")
        yield Path(tmp)


def _align(*sides: dict[str, Any] | None) -> None:
    labels = sorted({label for side in sides if side for label in side["by_label"]})
    for side in sides:
        if side:
            empty = {**_EMPTY, "hours": side["total"]["hours"]}  # same clips, so same footage
            side["by_label"] = {label: side["by_label"].get(label, dict(empty)) for label in labels}


def build(
    gates: dict[str, dict[str, Any]], test: str | Path | None, candidate_dir: Path, current_dir: Path | None
) -> dict[str, Any]:
    """The comparison (shape above). ``gates``: the job's gate results by name (only
    ``passed`` and ``failures`` are kept). ComparisonInputError when the test channel
    has no label files (without clips there is nothing to compare on) or the current
    bundle does not load."""
    files = label_files(test)
    if not files:
        raise ComparisonInputError(
            f"test channel {test}: no label files (*.json with their clips); the comparison replays clips"
        )
    candidate = score_bundle(files, candidate_dir)
    try:
        current = score_bundle(files, current_dir) if current_dir is not None else None
    except ModelError as exc:
        # no silent "no current model": the gate would then skip "no worse than it"
        raise ComparisonInputError(f"the current bundle does not load with this code: {exc}") from exc
    _align(candidate, current)
    return {
        "gates": {name: {"passed": bool(g["passed"]), "failures": list(g["failures"])} for name, g in gates.items()},
        "candidate": candidate,
        "current": current,
        "test_clips": [f.name for f in files],
    }


def write(out: Path, comparison: dict[str, Any]) -> Path:
    """Write ``comparison`` as ``out/comparison.json``; its path."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / COMPARISON_FILE
    path.write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")
    return path
