"""A real prediction server process with the dashboard mounted, for the dashboard tests.

python -m tests.dashboard.serve_dashboard DATABASE_URL HOME PORT

The project's keys are in HOME/keys and its artifacts in HOME/artifacts (made by the test). No
model is served: the dashboard does not need one. Passwords are hashed with a cheap Argon2id cost
(as in tests/conftest.py) to keep the suite fast; verification reads the cost from each hash.
"""

from __future__ import annotations

import sys
from pathlib import Path

from argon2 import PasswordHasher

from bedside.dashboard import mount_dashboard
from bedside.security import KeyRing
from bedside.service import Platform
from bedside.serving.app import create_app
from bedside.serving.inference_log import InferenceLog
from bedside.serving.models import ServedModels
from bedside.serving.server import serve
from bedside.stores.database import Database


def main(database_url: str, home: Path, port: int) -> None:
    def factory() -> object:
        keys = KeyRing(home / "keys")
        platform = Platform(
            Database(database_url),
            keys,
            hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
            home=home,
            artifacts_root=home / "artifacts",
        )
        app = create_app(ServedModels(), InferenceLog.open(home / "inference-log", key_ring=keys))
        mount_dashboard(app, platform)
        return app

    serve(factory, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]))
