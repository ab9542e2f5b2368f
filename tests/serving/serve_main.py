"""A real prediction server process for the crash and shutdown tests.

python -m tests.serving.serve_main FOLDER PORT [WORKERS]

Serves the seeded test models (production ``sepsis@1``, shadow ``sepsis@2``) with the inference
log in FOLDER/inference-log and the keys in FOLDER/keys (made by the test).
"""

from __future__ import annotations

import sys
from pathlib import Path

from bedside.security import KeyRing
from bedside.serving.app import create_app
from bedside.serving.inference_log import InferenceLog
from bedside.serving.models import DeployedModel, ServedModels
from bedside.serving.server import serve
from tests.serving.support import SCHEMA, NanSafe, fit_models


def main(folder: Path, port: int, workers: int) -> None:
    production, shadow = fit_models()
    keys = KeyRing(folder / "keys")

    def factory() -> object:
        models = ServedModels.of(
            [DeployedModel("sepsis", "1", production, 0.4, SCHEMA)],
            [DeployedModel("sepsis", "2", NanSafe(shadow), 0.3, SCHEMA)],
        )
        log = InferenceLog.open(folder / "inference-log", key_ring=keys)
        return create_app(models, log)

    serve(factory, host="127.0.0.1", port=port, workers=workers)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 1)
