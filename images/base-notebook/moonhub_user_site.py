"""The user's site (``~/.local``, in the workspace) made at start when missing: Python puts it
on ``sys.path`` only when the folder exists, so a user's first ``%pip install`` would
otherwise need a kernel restart before its import works. Loaded by ``moonhub-user-site.pth``
in the image's environment; does nothing where the user's site is off (the notebook server
and the job runner run with ``PYTHONNOUSERSITE``; root's builds)."""

import os
import site
import sys


def _make() -> None:
    # in a virtual environment with the system's packages, Python reads this environment's
    # .pth files before it decides on the user's site (ENABLE_USER_SITE still None)
    early = site.ENABLE_USER_SITE is None
    if not (site.check_enableusersite() if early else site.ENABLE_USER_SITE):
        return
    path = site.getusersitepackages()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # a read-only or missing home: nothing to install into either
        return
    if not early and path not in sys.path:
        site.addsitedir(path)  # (early: Python adds it next, now that it exists)


_make()
