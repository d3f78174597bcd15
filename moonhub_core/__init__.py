"""MoonHub's domain core: what the platform is (the catalog, choices, workloads, the pod
contract, capacity, security, errors), shared by every component and importing none of
them (docs/architecture.md)."""
