"""MoonHub's spawner: KubeSpawner with the platform's security and storage defaults.

The catalog (environments, sizes, GPU types, entitlements) and the workload builder will
live here too (see the spawner issue); today the spawner carries the defaults every user
pod needs.
"""

from .spawner import MoonSpawner

__all__ = ["MoonSpawner"]
