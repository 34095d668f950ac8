"""training/hyperparameters.py: a value out of range fails naming the hyperparameter."""

from __future__ import annotations

import pytest

from training.train import parse_args


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--hidden", "abc"],
            "argument --hidden: expected comma-separated positive layer sizes such as '64,32', got 'abc'",
        ),
        (["--hidden", "64,0"], "argument --hidden: expected comma-separated positive layer sizes"),
        (["--validation-every", "0"], "argument --validation-every: must be at least 2"),
        (["--validation-every", "1"], "argument --validation-every: must be at least 2"),
        (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["--min-precision", "2"], "argument --min-precision: must be above 0 and at most 1, got 2.0"),
        (["--min-auc", "nan"], "argument --min-auc: must be a finite number, got nan"),
        (["--epochs", "many"], "argument --epochs: invalid int value: 'many'"),
        # A negative floor would silently disable the quality gate; above 1 fails after the job.
        (["--min-recall", "-3"], "argument --min-recall: must be 0 to 1, got -3.0"),
        (["--min-auc", "5"], "argument --min-auc: must be 0 to 1, got 5.0"),
        (["--max-auc-drop", "-0.5"], "argument --max-auc-drop: must be 0 to 1, got -0.5"),
        # NumPy takes seeds 0 .. 2**32 - 1 (numpy.random.seed raises otherwise).
        (["--seed", "-1"], "argument --seed: must be 0 to 4294967295, got -1"),
        (["--seed", str(2**32)], "argument --seed: must be 0 to 4294967295, got 4294967296"),
        (["--learning-rate", "0"], "argument --learning-rate: must be above 0"),
        (["--prune-sparsity", "1"], "argument --prune-sparsity: must be 0 (off) or more, below 1"),
    ],
)
def test_a_bad_hyperparameter_value_fails_naming_it(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_hidden_layers_are_read_once_and_checked():
    from training.hyperparameters import hidden_layers

    assert hidden_layers("64, 32") == (64, 32) == hidden_layers(parse_args(["--hidden", "64,32"]).hidden)
    assert hidden_layers("") == ()


def test_every_numeric_hyperparameter_has_a_range():
    """A new int or float hyperparameter cannot be added without saying what range it takes."""
    from training.hyperparameters import HYPERPARAMETERS

    unranged = [h.name for h in HYPERPARAMETERS if h.type in (int, float) and h.limit is None]
    assert unranged == []


def test_the_edges_of_each_range_are_accepted():
    args = parse_args(["--min-recall", "0", "--min-auc", "1", "--seed", "0", "--max-auc-drop", "0"])
    assert (args.min_recall, args.min_auc, args.seed, args.max_auc_drop) == (0.0, 1.0, 0, 0.0)
    assert parse_args(["--seed", str(2**32 - 1)]).seed == 2**32 - 1
