"""Feature datasets: labelled clips -> rows of window features, with the edge's own code.

A dataset is a CSV file with the columns ``clip, time_s, zone`` (provenance),
the feature columns in the order of ``edge_component.analysis.features.FEATURE_NAMES``, and
``label`` (0 or 1). :func:`read_dataset` rejects anything else with a message that
names the column or row. It reads UTF-8 with or without a byte-order mark (Excel's
"CSV UTF-8") and skips empty rows (a trailing blank line, a row of bare commas).

Command line::

    python -m training.dataset examples/labels/*.json --out build/features.csv
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_component.analysis.features import FEATURE_NAMES
from edge_component.analysis.windows import analyse_source
from edge_component.capture.source import SourceError
from edge_component.config import CameraConfig, ComponentConfig

from .labels import LabelError, load_labels, not_utf8

META_COLUMNS = ("clip", "time_s", "zone")
LABEL_COLUMN = "label"
COLUMNS = (*META_COLUMNS, *FEATURE_NAMES, LABEL_COLUMN)
# The model computes in float32: a value at or above this magnitude becomes infinite.
FLOAT32_OVERFLOW = (2.0 - 2.0**-24) * 2.0**127


class DatasetError(ValueError):
    """The dataset cannot be used for training; the message names the column or row."""


@dataclass
class Dataset:
    X: np.ndarray  # float32, (n_rows, N_FEATURES), raw (not normalised)
    y: np.ndarray  # int8, (n_rows,)
    clips: np.ndarray  # str, (n_rows,) clip name per row
    times: np.ndarray  # float64, (n_rows,) media time of the window (s)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(self.X[mask], self.y[mask], self.clips[mask], self.times[mask])


def window_settings(config: ComponentConfig | None = None) -> dict[str, float]:
    """The feature window the rows describe, ``{"detection_fps": analyses/s, "window_s": s}``:
    ``config``'s, default the edge component's own defaults (what a device runs unless
    its deployment changes them), as :func:`featurize_labels` featurises by default."""
    if config is not None:
        return {"detection_fps": config.detection_fps, "window_s": config.window_s}
    fields = ComponentConfig.model_fields
    return {name: fields[name].default for name in ("detection_fps", "window_s")}


def featurize_labels(label_files: Iterable[str | Path], config: ComponentConfig | None = None) -> Dataset:
    """Run the edge's analysis over each labelled clip and label every window.

    ``config`` supplies detection rate, window and motion settings (defaults: the
    component's defaults); each label file supplies its camera's zones and masks.
    Raises LabelError naming the label file when its clip cannot be read as video, or
    when the clip ends before its labelled intervals do (a truncated copy: the windows
    after the cut would be missing, not normal).
    """
    X, y, clips, times = [], [], [], []
    for lf in label_files:
        labels, clip = load_labels(lf)
        camera = CameraConfig(
            name=labels.camera.name, source=str(clip), zones=labels.camera.zones, masks=labels.camera.masks
        )
        cfg = config or ComponentConfig(cameras=[camera])
        end_s = 0.0
        try:
            for w in analyse_source(camera, cfg):
                X.append(w.features)
                y.append(1 if labels.is_abnormal(w.frame.time_s) else 0)
                clips.append(clip.name)
                times.append(w.frame.time_s)
                end_s = w.frame.time_s
        except SourceError as exc:
            raise LabelError(f"{lf}: clip {labels.clip!r} cannot be read as video: {exc}") from None
        if cut := labels.beyond(end_s):
            spans = ", ".join(f"{iv.start_s:g}-{iv.end_s:g} s" for iv in cut)
            raise LabelError(
                f"{lf}: clip {labels.clip!r} ends at {end_s:.1f} s, before its abnormal intervals {spans}; "
                "the clip is truncated or the labels are for another clip"
            )
    if not X:
        raise DatasetError("no label files given, or their clips held no frames")
    return Dataset(np.stack(X).astype(np.float32), np.array(y, np.int8), np.array(clips), np.array(times))


def write_dataset(ds: Dataset, path: str | Path, zone: str = "") -> Path:
    """Write ``ds`` as CSV with :data:`COLUMNS`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for x, label, clip, t in zip(ds.X, ds.y, ds.clips, ds.times, strict=True):
            w.writerow([clip, f"{t:.3f}", zone, *(f"{v:.6g}" for v in x), int(label)])
    return path


def read_dataset(path: str | Path, *, both_classes: bool = True) -> Dataset:
    """Read and check a feature CSV.

    Raises DatasetError for: a missing file or one that is not UTF-8 (naming the line),
    a header that does not match the feature contract (missing, extra, duplicated or
    reordered columns; a missing label column), a non-numeric, NaN or infinite feature
    or one beyond float32's range, a non-numeric or non-finite time, a label other than
    0/1, or (unless ``both_classes`` is False: one event's feedback rows are all of one
    class) a single class. Row numbers are line numbers (the header is row 1).
    """
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read dataset: {exc.strerror}") from None
    try:
        with fh:
            return _read_rows(path, csv.reader(fh), both_classes)
    except UnicodeDecodeError:
        with path.open("rb") as raw:
            raise DatasetError(f"{path}: {not_utf8(raw)}") from None


def _is_empty(row: list[str]) -> bool:
    return not any(field.strip() for field in row)


def _read_rows(path: Path, reader, both_classes: bool = True) -> Dataset:
    """The checks of :func:`read_dataset` on the rows of a ``csv.reader``."""
    header = next((row for row in reader if not _is_empty(row)), None)
    if not header:
        raise DatasetError(f"{path}: empty file, expected a header row")
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        raise DatasetError(f"{path}: duplicate column names {duplicates}; each column must appear once")
    if LABEL_COLUMN not in header:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = " (the header is one column: the file seems separated by something other than commas)"
        raise DatasetError(f"{path}: no '{LABEL_COLUMN}' column{hint}")
    features_in_file = [c for c in header if c not in (*META_COLUMNS, LABEL_COLUMN)]
    if features_in_file != list(FEATURE_NAMES):
        missing = [c for c in FEATURE_NAMES if c not in features_in_file]
        extra = [c for c in features_in_file if c not in FEATURE_NAMES]
        detail = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "columns out of order"
        raise DatasetError(
            f"{path}: feature columns do not match the feature contract: {detail}; expected {list(FEATURE_NAMES)}"
        )
    idx = {c: i for i, c in enumerate(header)}
    X, y, clips, times = [], [], [], []
    for row in reader:
        rowno = reader.line_num
        if _is_empty(row):
            continue
        if len(row) != len(header):
            raise DatasetError(f"{path}: row {rowno} has {len(row)} fields, header has {len(header)}")
        vals = []
        for name in FEATURE_NAMES:
            raw = row[idx[name]]
            try:
                v = float(raw)
            except ValueError:
                raise DatasetError(f"{path}: row {rowno}, column {name!r}: not a number: {raw!r}") from None
            if not math.isfinite(v):
                raise DatasetError(f"{path}: row {rowno}, column {name!r}: {raw} is not finite")
            if abs(v) >= FLOAT32_OVERFLOW:
                raise DatasetError(
                    f"{path}: row {rowno}, column {name!r}: {raw} is beyond the float32 range "
                    f"(|x| <= {np.finfo(np.float32).max:.4g}) the model computes in"
                )
            vals.append(v)
        label = row[idx[LABEL_COLUMN]].strip()
        if label not in ("0", "1"):
            raise DatasetError(f"{path}: row {rowno}, column 'label': must be 0 or 1, got {label!r}")
        X.append(vals)
        y.append(int(label))
        clips.append(row[idx["clip"]] if "clip" in idx else "")
        raw_t = row[idx["time_s"]] if "time_s" in idx else ""
        try:
            t = float(raw_t) if raw_t.strip() else float(len(times))
        except ValueError:
            raise DatasetError(f"{path}: row {rowno}, column 'time_s': not a number: {raw_t!r}") from None
        if not math.isfinite(t):
            raise DatasetError(f"{path}: row {rowno}, column 'time_s': {raw_t} is not finite")
        times.append(t)
    if not X:
        raise DatasetError(f"{path}: no data rows")
    if both_classes and len(set(y)) < 2:
        raise DatasetError(f"{path}: every row has label {y[0]}; training needs both classes (0 and 1)")
    return Dataset(np.array(X, np.float32), np.array(y, np.int8), np.array(clips), np.array(times))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("labels", nargs="+", help="label files (JSON)")
    p.add_argument("--out", required=True, help="CSV to write")
    args = p.parse_args(argv)
    ds = featurize_labels(args.labels)
    write_dataset(ds, args.out)
    print(f"wrote {len(ds)} windows ({int(ds.y.sum())} abnormal) to {args.out}")


if __name__ == "__main__":
    main()
