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
