# The scale benchmark's baseline (benchmarks/hub_scale.py): stock JupyterHub and KubeSpawner,
# configured as a z2jh deployment would be for the same servers MoonHub starts (same image,
# guarantees and limits, the same existing workspace claims, the same proxy executable and
# nodes), with nothing of MoonHub's. Settings come from the environment the benchmark sets.
import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821

env = os.environ
c.JupyterHub.bind_url = env["BASELINE_PUBLIC_URL"]
c.JupyterHub.hub_bind_url = env["BASELINE_API_URL"]
c.ConfigurableHTTPProxy.api_url = env["BASELINE_PROXY_API_URL"]
c.ConfigurableHTTPProxy.command = [env["BASELINE_PROXY_COMMAND"]]
c.JupyterHub.db_url = f"sqlite:///{env['BASELINE_STATE']}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{env['BASELINE_STATE']}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{env['BASELINE_STATE']}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = env["BASELINE_PASSWORD"]
c.Authenticator.admin_users = {"admin"}
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = env["BASELINE_NAMESPACE"]
c.KubeSpawner.image = env["BASELINE_IMAGE"]
c.KubeSpawner.image_pull_policy = "IfNotPresent"
c.KubeSpawner.pod_name_template = "base-{user_server}"
c.KubeSpawner.cpu_guarantee, c.KubeSpawner.cpu_limit = 0.1, 2
c.KubeSpawner.mem_guarantee, c.KubeSpawner.mem_limit = "512M", "4G"
c.KubeSpawner.start_timeout = 120
c.KubeSpawner.http_timeout = 120
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.pvc_name_template = "claim-{username}"
c.KubeSpawner.storage_class = env["BASELINE_STORAGE_CLASS"]
c.KubeSpawner.storage_capacity = "10Gi"
c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
# a spawn form, as most deployments have (two profiles; the API's spawns take the default)
c.KubeSpawner.profile_list = [
    {"display_name": "Small", "default": True},
    {"display_name": "Medium", "kubespawner_override": {"cpu_guarantee": 0.5, "cpu_limit": 4}},
]
# the users' namespace enforces Pod Security "restricted", as MoonHub's does
c.KubeSpawner.uid, c.KubeSpawner.fs_gid = 1000, 100
c.KubeSpawner.container_security_context = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
