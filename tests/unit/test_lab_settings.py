"""The server extension's settings: every variable the spawner sets is read in one place, a
value that does not parse counts as not given (issue 34, item 1)."""

from __future__ import annotations

from moonhub_lab import settings
from moonhub_lab.settings import LabSettings, from_env


def test_what_the_spawner_sets_is_read_typed() -> None:
    told = from_env(
        {
            "MOONHUB_JOBS_URL": "http://jobs/services/jobs/",
            "JUPYTERHUB_API_TOKEN": "t0ken",
            "MOONHUB_NOTICES_URL": "http://reclaim/notices",
            "MOONHUB_NOTICES_SECONDS": "15",
            "MOONHUB_GPU_COUNT": "2",
            "MOONHUB_ENVIRONMENT": "pytorch",
            "MOONHUB_OOM_CHECK_SECONDS": "0.5",
        }
    )
    assert (told.jobs_url, told.api_token, told.notices_seconds, told.gpu_count) == (
        "http://jobs/services/jobs/",
        "t0ken",
        15.0,
        2,
    )
    assert (told.environment, told.oom_check_seconds, told.disk_check_seconds) == ("pytorch", 0.5, 20.0)


def test_nothing_told_or_nonsense_means_the_defaults() -> None:
    assert from_env({}) == LabSettings()
    nonsense = {"MOONHUB_GPU_COUNT": "two", "MOONHUB_OOM_CHECK_SECONDS": "0", "MOONHUB_NOTICES_SECONDS": "-3"}
    assert from_env(nonsense) == LabSettings(), "a check every 0 s, or notices every -3 s, is not taken"
    assert from_env({}).notices_seconds == 0, "the platform's culling.notices_seconds is the one default"


def test_every_setting_has_its_variable() -> None:
    assert set(settings.ENV) == set(LabSettings.__dataclass_fields__)
