"""training/prune.py: magnitude pruning reaches its sparsity and shrinks the compressed model."""

from __future__ import annotations

from training.train import parse_args


def _job_args(tmp_path, csv_path, *extra):
    """Arguments for a quick job on the example clip's features (few epochs, no extras)."""
    return [
        "--model-dir",
        str(tmp_path / "model"),
        "--output-data-dir",
        str(tmp_path / "out"),
        "--train",
        str(csv_path),
        "--test",
        "none",
        "--epochs",
        "3",
        "--cross-clip",
        "false",
        "--latency-rows",
        "0",
        "--plots",
        "false",
        "--min-auc",
        "0.5",
        "--min-recall",
        "0",
        *extra,
    ]


def test_pruning_reaches_its_sparsity_and_shrinks_the_gzip_size(tmp_path, csv_path):
    from training.train import train

    report = train(parse_args(_job_args(tmp_path, csv_path, "--prune-sparsity", "0.6", "--prune-epochs", "4")))
    pruning = report["pruning"]
    assert pruning["target"] == 0.6 and 0.55 <= pruning["reached"]["total"] <= 0.65
    # Zeros stay in the flatbuffer (same raw size) but compress: the float file shrinks by ~half under gzip.
    assert report["gzip_bytes"]["float"] < 0.7 * report["size_bytes"]["float"]
    assert report["auc_int8"] >= 0.5 and (tmp_path / "model" / "manifest.json").is_file()
