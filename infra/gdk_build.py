"""`gdk component build` for this component (GDK's custom build system).

Writes what the Greengrass Development Kit publishes, in its layout:
``greengrass-build/recipes/recipe.yaml`` (this folder's recipe, placeholders kept for
``gdk component publish`` to fill in) and
``greengrass-build/artifacts/<component>/<version>/vigil-edge.zip`` built by the same
deterministic packer as the CDK app, so both paths ship byte-identical code.
Run from this folder (GDK does); needs the repository checkout around it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from infra.packaging import ARTIFACT_FILE, artifact_bytes  # noqa: E402


def main() -> int:
    config = json.loads((HERE / "gdk-config.json").read_text(encoding="utf-8"))
    (name, component), = config["component"].items()
    out = HERE / "greengrass-build"
    shutil.rmtree(out, ignore_errors=True)
    (out / "recipes").mkdir(parents=True)
    shutil.copyfile(HERE / "recipe.yaml", out / "recipes" / "recipe.yaml")
    artifact = out / "artifacts" / name / component["version"] / ARTIFACT_FILE
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(artifact_bytes(HERE))
    print(f"built {artifact.relative_to(HERE)} and greengrass-build/recipes/recipe.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
