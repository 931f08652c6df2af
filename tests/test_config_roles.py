"""The roles' rules in the configuration (SPEC §3): where [[people]] knows a person's role,
``taskplanner config check`` refuses a job coordinator or stage owner the role does not allow,
with exit code 2 and one line naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskplanner.cli import app

BASE = """
[organisation]
name = "Acme"
account_owner = "ada@acme.example"

[[people]]
email = "hank@acme.example"
role = "hiring_manager"

[[people]]
email = "ivy@acme.example"
role = "interviewer"

[[people]]
email = "cora@acme.example"
role = "coordinator"
"""


def check(tmp_path: Path, jobs: str) -> tuple[int, str, str, Path]:
    path = tmp_path / "taskplanner.toml"
    path.write_text(BASE + jobs)
    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])
    return result.exit_code, result.stdout, result.stderr, path


@pytest.fixture(autouse=True)
def _no_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TASKPLANNER_CONFIG", raising=False)


def test_a_hiring_manager_as_job_coordinator_is_refused(tmp_path: Path) -> None:
    code, out, err, path = check(
        tmp_path,
        """
[[jobs]]
ats_job_id = "4012"
coordinator = "hank@acme.example"
""",
    )

    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "jobs[0].coordinator: hank@acme.example is a hiring manager in [[people]]; a job "
        f"coordinator must be a coordinator, a recruiter or an admin ({path})"
    ]


def test_an_interviewer_as_stage_owner_is_refused(tmp_path: Path) -> None:
    code, out, err, path = check(
        tmp_path,
        """
[[jobs]]
ats_job_id = "4012"
coordinator = "cora@acme.example"
stage_owners = { "Phone Screen" = "hank@acme.example", "Onsite" = "ivy@acme.example" }
""",
    )

    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "jobs[0].stage_owners.Onsite: ivy@acme.example is an interviewer in [[people]]; a "
        "stage owner must be a coordinator, a recruiter, an admin or a hiring manager "
        f"({path})"
    ]


def test_people_the_configuration_does_not_describe_may_hold_any_post(tmp_path: Path) -> None:
    code, out, err, _ = check(
        tmp_path,
        """
[[jobs]]
ats_job_id = "4012"
coordinator = "newcomer@acme.example"
stage_owners = { "Onsite" = "hank@acme.example" }
""",
    )

    assert code == 0, err
    assert "job overrides: 1" in out
