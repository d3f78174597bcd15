"""MoonHub's storage agent: the part of workspace storage no maintained provisioner does for
GlusterFS folders (``docs/storage.md``).

local-path-provisioner makes a folder per claim on the Gluster mount and its helper sets the
folder's directory quota; it can not grow a volume, and nothing reports what a folder uses.
The agent, running where Gluster's CLI reaches glusterd:

- grows: a claim whose request is above its volume's capacity (a user or admin chose a
  larger workspace) gets the larger Gluster quota, then the volume's and the claim's
  capacity, as an external resizer does for a CSI driver;
- reports: each claim's used bytes from Gluster's quota accounting, as annotations on the
  claim (``moonhub_core.workspaces``), which the admin console shows.

``plan`` is pure; ``agent`` talks to Kubernetes and Gluster.
"""
