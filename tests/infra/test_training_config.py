"""infra/training_config.py: a stage's hyperparameters are checked against training.hyperparameters,
the definition train.py's parser is built from."""

from __future__ import annotations

import pytest

from training.hyperparameters import HYPERPARAMETERS


def test_hyperparameter_names_are_the_options_of_train_py(monkeypatch):
    """The names the stage config checks (training.hyperparameters) are exactly the
    options train.py's parser takes, less those whose default comes from the SageMaker
    environment (SM_*), with the same converters."""
    import argparse

    train = pytest.importorskip("training.train")

    class SentinelEnviron(dict):
        def get(self, key, default=None):
            return f"<{key}>" if key.startswith("SM_") else default

    parsers = []
    original = argparse.ArgumentParser.parse_known_args

    def spy(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", spy)
    monkeypatch.setattr(train.os, "environ", SentinelEnviron())
    train.parse_args([])
    [parser] = parsers
    options = {
        option[2:]: action.type
        for action in parser._actions
        if not (isinstance(action.default, str) and action.default.startswith("<SM_"))
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    read = {h.name: (h.type.__name__ if h.type else None) for h in HYPERPARAMETERS}
    assert set(read) == set(options)
    for name, kind in options.items():
        assert read[name] == (kind.__name__ if kind else None), name
