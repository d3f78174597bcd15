"""Maps MoonHub's platform config document onto JupyterHub traitlets (no other logic)."""

from ._version import __version__
from .platform import ConfigError, PlatformConfig, load

__all__ = ["ConfigError", "PlatformConfig", "__version__", "load"]
