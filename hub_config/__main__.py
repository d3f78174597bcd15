"""``python -m hub_config [jupyterhub options]``: run JupyterHub with MoonHub's config file.

Options after it go to ``jupyterhub`` and win over the config file (e.g.
``--JupyterHub.log_level=DEBUG``)."""

import os
import sys
from pathlib import Path

CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")


def main() -> None:
    os.execvp("jupyterhub", ["jupyterhub", "-f", str(CONFIG_FILE), *sys.argv[1:]])


if __name__ == "__main__":
    main()
