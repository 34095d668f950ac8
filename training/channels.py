"""The job's data: SageMaker channels read into datasets, and the training/validation split.

A channel (``SM_CHANNEL_<NAME>``, or a path given on the command line) holds either
feature CSVs (:mod:`training.dataset` format) or label files (``*.json``) with their
clips, which are featurised with the edge's own code; a channel holding both is refused.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from training.dataset import Dataset, DatasetError, featurize_labels, read_dataset

log = logging.getLogger("vigil.train")


def _names(paths: list[Path], most: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def load_channel(path: str | Path, channel: str = "training") -> Dataset:
    """Read every feature CSV in ``path``, or featurise every label file in it; a
    channel holding both kinds is refused (DatasetError naming both)."""
    path = Path(path)
    if path.is_file():
        return read_dataset(path) if path.suffix == ".csv" else featurize_labels([path])
    if not path.is_dir():
        raise DatasetError(f"{channel} channel {path} does not exist")
    csvs, labels = sorted(path.glob("*.csv")), sorted(path.glob("*.json"))
    if csvs and labels:
        raise DatasetError(
            f"{channel} channel {path} mixes feature CSVs ({_names(csvs)}) and label files "
            f"({_names(labels)}); a channel holds one kind: move the other to its own channel"
        )
    if csvs:
        parts = [read_dataset(c) for c in csvs]
        return Dataset(*(np.concatenate([getattr(d, f) for d in parts]) for f in ("X", "y", "clips", "times")))
    if not labels:
        raise DatasetError(f"{channel} channel {path} holds no *.csv dataset and no *.json label file")
    return featurize_labels(labels)


def split_blocks(ds: Dataset, every: int, block_s: float = 10.0) -> tuple[Dataset, Dataset]:
    """Split by contiguous 10-s blocks of each clip (every Nth block validates), so
    neighbouring, nearly identical windows do not sit on both sides of the split."""
    block = (ds.times // block_s).astype(int)
    val = (block % every) == (every // 2)
    return ds.subset(~val), ds.subset(val)


def both_classes(**splits: Dataset) -> None:
    """Raise DatasetError naming the first split (by keyword) that holds a single class."""
    for name, d in splits.items():
        if len(set(d.y.tolist())) < 2:
            raise DatasetError(f"the {name} split has a single class; add labelled footage of both kinds")


def load_splits(args: argparse.Namespace) -> tuple[Dataset, Dataset, Dataset, Dataset | None]:
    """``(all training-channel data, training split, validation split, test channel or
    None)``; raises DatasetError when a split lacks a class."""
    data = load_channel(args.train)
    if args.validation:
        train_ds, val_ds = data, load_channel(args.validation, "validation")
    else:
        train_ds, val_ds = split_blocks(data, args.validation_every)
    both_classes(training=train_ds, validation=val_ds)
    test_ds = load_channel(args.test, "test") if args.test and str(args.test).lower() != "none" else None
    log.info(
        "windows: %d train (%d abnormal), %d validation (%d abnormal), clips %s; test clips %s",
        len(train_ds),
        int(train_ds.y.sum()),
        len(val_ds),
        int(val_ds.y.sum()),
        sorted(set(data.clips.tolist())),
        sorted(set(test_ds.clips.tolist())) if test_ds is not None else "none",
    )
    return data, train_ds, val_ds, test_ds
