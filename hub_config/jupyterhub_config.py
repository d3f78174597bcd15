"""``jupyterhub -f hub_config/jupyterhub_config.py``: reads $MOONHUB_CONFIG and applies it."""

import os
import sys
from pathlib import Path

from hub_config.platform import ConfigError, load
from hub_config.traits import apply

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by JupyterHub

_path = Path(os.environ.get("MOONHUB_CONFIG", Path(__file__).parent / "examples" / "local.yaml"))
try:
    apply(c, load(_path), _path.parent)
except ConfigError as e:
    print(f"MoonHub configuration error: {e}", file=sys.stderr)
    sys.exit(2)
