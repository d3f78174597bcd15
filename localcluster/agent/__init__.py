"""The local node agent: runs pods bound to its Node as host processes (dev and tests)."""
