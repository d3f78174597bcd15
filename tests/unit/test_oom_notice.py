from pathlib import Path

from moonhub_lab.memory import OomWatch, human_bytes, message, oom_kills


def test_counts_come_from_either_cgroup_version() -> None:
    assert oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == 3  # v1 memory.oom_control
    assert oom_kills("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n") == 2  # v2 memory.events
    assert oom_kills("under_oom 0\n") is None


def test_message_names_the_limit() -> None:
    assert human_bytes(4 * 2**30) == "4 GiB" and human_bytes(1536 * 2**20) == "1.5 GiB"
    text = message(1, 4 * 2**30)
    assert text.startswith("A process in this server ran out of memory (limit 4 GiB)") and "larger size" in text
    assert message(2, None).startswith("2 processes in this server ran out of memory and")


def test_watch_reports_only_new_kills(tmp_path: Path) -> None:
    mem = tmp_path / "memory"
    mem.mkdir()
    (mem / "memory.limit_in_bytes").write_text(f"{2**30}\n")
    (mem / "memory.oom_control").write_text("oom_kill 1\n")  # before the server started
    watch = OomWatch(root=tmp_path)
    assert watch.new_kills() == (0, 2**30)
    (mem / "memory.oom_control").write_text("oom_kill 3\n")
    assert watch.new_kills() == (2, 2**30)
    assert watch.new_kills() == (0, 2**30)
    (mem / "memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")  # unlimited
    assert watch.new_kills() == (0, None)
