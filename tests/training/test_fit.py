"""training/fit.py: training is repeatable with a fixed seed."""

from __future__ import annotations

import numpy as np

from training.train import parse_args


def test_training_is_repeatable_with_a_fixed_seed(dataset):
    from training.channels import split_blocks
    from training.fit import fit

    args = parse_args(["--epochs", "2"])
    tr, va = split_blocks(dataset, args.validation_every)
    weights = [fit(tr, va, args)[1].get_weights() for _ in range(2)]
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
