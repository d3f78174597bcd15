"""Maps MoonHub's platform config document onto JupyterHub traitlets (no other logic)."""

from moonhub_core.platform import ConfigError, PlatformConfig, load

from ._version import __version__

__all__ = ["ConfigError", "PlatformConfig", "__version__", "load"]
