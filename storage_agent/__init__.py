"""MoonHub's storage agent: workspace storage on an existing GlusterFS, where no maintained
provisioner does what is needed (``docs/storage.md``). Running where the volume is mounted and
Gluster's CLI reaches glusterd (a Gluster peer; the chart's ``storage.gluster``), it:

- provisions the class (``moonhub.io/gluster``): a new claim's folder, with its owner, mode
  and directory quota, then a ``hostPath`` volume bound to the claim; a released volume's
  folder and quota go with it (:mod:`.provision`, :mod:`.folders`);
- grows: a claim whose request is above its volume's capacity (a user or admin chose a
  larger workspace) gets the larger Gluster quota, then the volume's and the claim's
  capacity, as an external resizer does for a CSI driver;
- reports: each claim's used bytes from Gluster's quota accounting, as annotations on the
  claim (``moonhub_core.workspaces``), which the admin console shows.

``plan`` and ``provision`` are pure; ``agent`` and ``folders`` talk to Kubernetes, the
mount and Gluster.
"""
