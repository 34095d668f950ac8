"""`gdk component build` for the edge component (GDK's custom build system).

Writes what the Greengrass Development Kit publishes, in its layout:
``edge_component/greengrass-build/recipes/recipe.yaml`` (the component's recipe, placeholders kept for
``gdk component publish`` to fill in) and
``edge_component/greengrass-build/artifacts/<component>/<version>/vigil-edge.zip`` built by the same
deterministic packer as the CDK app, so both paths ship byte-identical code.
GDK runs it from ``edge_component/`` (``gdk-config.json``: ``python3
../infra/gdk_build.py``); it needs the repository checkout around the component, and
lives in ``infra/`` so that the component ships nothing that imports the infrastructure.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPONENT = REPO / "edge_component"
sys.path.insert(0, str(REPO))  # run as a script by GDK, from the component's folder

from infra.packaging import ARTIFACT_FILE, artifact_bytes  # noqa: E402


def main() -> int:
    config = json.loads((COMPONENT / "gdk-config.json").read_text(encoding="utf-8"))
    ((name, component),) = config["component"].items()
    out = COMPONENT / "greengrass-build"
    shutil.rmtree(out, ignore_errors=True)
    (out / "recipes").mkdir(parents=True)
    shutil.copyfile(COMPONENT / "recipe.yaml", out / "recipes" / "recipe.yaml")
    artifact = out / "artifacts" / name / component["version"] / ARTIFACT_FILE
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(artifact_bytes(COMPONENT))
    print(f"built {artifact.relative_to(COMPONENT)} and greengrass-build/recipes/recipe.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
