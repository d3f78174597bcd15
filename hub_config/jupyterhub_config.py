"""``jupyterhub -f hub_config/jupyterhub_config.py``: reads $MOONHUB_CONFIG and applies it.

This is where the hub's parts are wired together: the platform document onto JupyterHub's
traits (``hub_config.traits``), and the admin console's pages mounted into the hub.
"""

import sys

from admin_console.handlers import TEMPLATES as CONSOLE_TEMPLATES
from admin_console.handlers import handlers as console_handlers
from hub_config.services import stop_services_promptly
from hub_config.traits import apply
from moonhub_core.platform import ConfigError, config_path, load

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by JupyterHub

_path = config_path()
try:
    apply(c, load(_path), _path)
except ConfigError as e:
    print(f"MoonHub configuration error: {e}", file=sys.stderr)
    sys.exit(2)
stop_services_promptly()
# the admin console (hub admins only): the catalog the spawner reads, and who runs what
c.JupyterHub.extra_handlers = console_handlers()
c.JupyterHub.template_paths = [str(CONSOLE_TEMPLATES)]
