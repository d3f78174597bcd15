"""MoonHub's jobs service: notebooks promoted into scheduled production jobs on Kubernetes.

``validation`` (pure) checks a job definition; ``manifests`` (pure) turns it into a
CronJob / Job whose pod comes from the spawner's workload builder; the runner inside the
pod is ``moonhub-run-notebook`` from ``lab_extension``.
"""
