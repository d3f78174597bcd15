"""A real upstream Kubernetes control plane on one machine, for development and tests.

`localcluster.build.sh` builds the pinned binaries; :mod:`localcluster.cli` starts and
stops etcd, the API server, the controller manager, the scheduler, kwok (simulated nodes)
and the MoonHub node agent (:mod:`localcluster.agent`), which runs pods as host processes.
"""
