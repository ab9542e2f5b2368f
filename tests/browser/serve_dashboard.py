"""Stand-in for ``bedside serve`` while the CLI command is not wired (used only then).

python -m tests.browser.serve_dashboard HOME PORT

Serves the prediction API (no models loaded) and the dashboard over the project in HOME, the
same app ``bedside serve`` builds. conftest.py uses ``bedside serve`` whenever the CLI has it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bedside.config import Settings
from bedside.dashboard import mount_dashboard
from bedside.service import Platform
from bedside.serving.app import create_app
from bedside.serving.inference_log import InferenceLog
from bedside.serving.models import ServedModels
from bedside.serving.server import serve


def main(home: Path, port: int) -> None:
    platform = Platform.from_settings(Settings.load({}, home=home))

    def factory() -> object:
        log = InferenceLog.open(home / "inference-log", key_ring=platform.keys)
        app = create_app(ServedModels.of([]), log, platform=platform)
        mount_dashboard(app, platform)
        return app

    serve(factory, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
