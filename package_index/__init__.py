"""MoonHub's package index for users' pods: a caching proxy of a PyPI-style index (proxpi,
served by waitress). The local cluster runs it on its node; the chart runs it as a
Deployment in front of the operator's index (``packageIndex``). ``python -m package_index``."""
