"""GPU-aware reclaim and idle warnings: a JupyterHub-managed service next to
jupyterhub-idle-culler (see docs/hub.md, "Culling and GPU-aware reclaim")."""
