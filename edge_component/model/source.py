"""Where the edge takes its model bundle from, and which model version that is.

On a device the model is its own Greengrass component (``com.vigil.Model.<stage>``,
:mod:`edge_component.contracts.model_component`). The code component's recipe passes
the folder its bundle unpacks into in the environment variable :data:`MODEL_DIR_ENV`
(``VIGIL_MODEL_DIR={com.vigil.Model.<stage>:artifacts:decompressedPath}/model-bundle``).

- :data:`MODEL_DIR_ENV` set: the bundle is loaded from there, with every check of
  :func:`~edge_component.model.bundle.load_bundle` (manifest, feature contract,
  SHA-256 of every file, the int8 model's I/O). Set but empty, missing or corrupt is a
  :class:`ModelError` naming the variable and the path: the process exits 2, Greengrass
  marks the component ERRORED and the canary check sees it. Never a silent fall back
  to the seed bundle shipped with the code.
- unset: ``--model-dir`` (today's behaviour; the seed bundle, or a local build).

The model version (telemetry's ``model.version``). No recipe variable gives a
dependency's *version* (the recipe reference lists ``configuration:/path``,
``artifacts:path``, ``artifacts:decompressedPath`` per dependency, and
``kernel:rootPath``, ``iot:thingName``), and a value in the model component's
configuration would go stale: a deployment *patches* the configuration already on the
device, so the first version's default would stay after an upgrade (component recipe
reference, "Recipe variables"; "Update component configurations":
https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html#recipe-variables
https://docs.aws.amazon.com/greengrass/v2/developerguide/update-component-configurations.html).
So the version comes from, in order:

1. :data:`MODEL_VERSION_ENV` when set (an operator, or a recipe that knows it);
   it must be ``major.minor.patch``;
2. the bundle folder's path: the nucleus unpacks a component's archives into
   ``<root>/packages/artifacts-unarchived/<component>/<version>/`` (aws-greengrass-nucleus
   ``ComponentStore`` ``ARTIFACTS_DECOMPRESSED_DIRECTORY``; the AWS guides show the
   same layout, e.g. ``/greengrass/v2/packages/artifacts-unarchived/<name>/<version>/...``),
   so ``.../com.vigil.Model.<stage>/<version>/model-bundle`` names it;
3. otherwise ``None`` (a local run, or the seed bundle inside the code component).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_component.contracts.model_component import MODEL_COMPONENT_BASE_NAME

from .bundle import ModelBundle, load_bundle
from .errors import ModelError

MODEL_DIR_ENV = "VIGIL_MODEL_DIR"
MODEL_VERSION_ENV = "VIGIL_MODEL_VERSION"
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True)
class ModelSource:
    """The bundle folder to load and where it was named.

    ``origin``: ``"VIGIL_MODEL_DIR"`` or ``"--model-dir"`` (for messages).
    ``version``: the model component version (see the module docstring) or None.
    """

    directory: Path
    origin: str
    version: str | None

    @property
    def from_component(self) -> bool:
        return self.origin == MODEL_DIR_ENV


def resolve_model_source(model_dir: str | Path | None, environ: Mapping[str, str] | None = None) -> ModelSource:
    """The bundle folder: ``$VIGIL_MODEL_DIR`` when set (it wins over ``model_dir``), else
    ``model_dir``.

    Raises :class:`ModelError` when ``VIGIL_MODEL_DIR`` is set but empty or still holds a
    recipe variable (``{...}``, Greengrass did not resolve it), when neither is
    given, or when ``VIGIL_MODEL_VERSION`` is set but not ``major.minor.patch`` (for
    example a recipe variable Greengrass left unresolved, ``{...}``).
    """
    env = os.environ if environ is None else environ
    if MODEL_DIR_ENV in env:
        raw = env[MODEL_DIR_ENV].strip()
        if not raw:
            raise ModelError(
                f"{MODEL_DIR_ENV} is set but empty: the recipe must pass the model component's bundle folder"
            )
        if "{" in raw:
            # Greengrass leaves a variable it cannot resolve as written (recipe reference:
            # a dependency's variables resolve only for a direct dependency).
            raise ModelError(
                f"{MODEL_DIR_ENV}={raw}: an unresolved recipe variable; is the model component a direct"
                " dependency of this component?"
            )
        directory, origin = Path(raw), MODEL_DIR_ENV
    elif model_dir is not None and str(model_dir).strip():
        directory, origin = Path(model_dir), "--model-dir"
    else:
        raise ModelError(f"no model bundle: give --model-dir or set {MODEL_DIR_ENV}")
    return ModelSource(directory, origin, _version(directory, origin, env))


def _version(directory: Path, origin: str, env: Mapping[str, str]) -> str | None:
    if MODEL_VERSION_ENV in env:
        version = env[MODEL_VERSION_ENV].strip()
        if not _VERSION.fullmatch(version):
            raise ModelError(f"{MODEL_VERSION_ENV}={env[MODEL_VERSION_ENV]!r} is not a major.minor.patch version")
        return version
    if origin != MODEL_DIR_ENV:
        return None
    # .../artifacts-unarchived/com.vigil.Model.<stage>/<version>/model-bundle
    version_dir = directory.parent
    component = version_dir.parent.name
    if component.startswith(MODEL_COMPONENT_BASE_NAME + ".") and _VERSION.fullmatch(version_dir.name):
        return version_dir.name
    return None


def load_model(source: ModelSource, model_file: str | None = None) -> ModelBundle:
    """:func:`~edge_component.model.bundle.load_bundle` of ``source.directory``, every
    check included. From ``VIGIL_MODEL_DIR``, a failure's :class:`ModelError` says so:
    ``VIGIL_MODEL_DIR=<path>: <the problem>``."""
    directory = source.directory
    try:
        if not directory.is_dir():
            raise ModelError(f"the model bundle folder {_not_a_folder(directory)}")
        return load_bundle(directory, model_file)
    except ModelError as exc:
        if source.from_component:
            raise ModelError(
                f"{MODEL_DIR_ENV}={directory}: {exc} (the model component's bundle is missing or corrupt;"
                " not falling back to the seed model)"
            ) from None
        if not directory.is_dir():
            raise ModelError(f"--model-dir {directory}: {exc}") from None
        raise


def _not_a_folder(directory: Path) -> str:
    """Why ``directory`` (not a folder) is not one: missing, a symlink loop, unreadable, or a file."""
    try:
        os.stat(directory)
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symbolic link loop"
        return f"cannot be read: {exc.strerror or exc}"
    return "is not a directory"


def model_report(source: ModelSource, bundle: ModelBundle) -> dict[str, str | None]:
    """Telemetry's ``model`` object: ``{"sha256", "version", "file"}``: the SHA-256 (hex)
    of the model file the edge scores with (alerts' ``model_sha256``), the model
    component version (or None) and the file's name."""
    return {"sha256": bundle.sha256, "version": source.version, "file": bundle.manifest.model_file}
