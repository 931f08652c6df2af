"""Who owns what (SPEC §3): job coordinator, stage owner, coordinator for the candidate.

Pure functions over plain values; the engine gathers the values from the mirror and the
configuration and stores the answer with the role it came through, so a later owner change
can move exactly the tasks that followed that role.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from taskplanner.domain.categories import Role

MANUAL = "manual"
JC_ROLES = frozenset({"coordinator", "recruiter", "admin"})


@dataclass(frozen=True)
class JobOverrideRules:
    coordinator: str | None = None
    stage_owners: Mapping[str, str] = field(default_factory=dict)  # stage name -> email
    inactivity_after: Mapping[str, timedelta] = field(default_factory=dict)


@dataclass(frozen=True)
class OrgRules:
    """The organisation's rules, taken from the configuration (no I/O)."""

    account_owner: str
    scheduling_stages: frozenset[str] = frozenset()
    inactivity_stages: frozenset[str] = frozenset()
    evaluation_due_after: timedelta = timedelta(hours=24)
    job_live_within: timedelta = timedelta(hours=24)
    inactivity_after: timedelta = timedelta(days=15)
    people_roles: Mapping[str, str] = field(default_factory=dict)  # email -> role
    jobs: Mapping[str, JobOverrideRules] = field(default_factory=dict)  # ATS job id ->

    def job(self, job_id: str | None) -> JobOverrideRules:
        return self.jobs.get(job_id or "", JobOverrideRules())

    def stage_enabled_by_default(self, stage_name: str) -> bool:
        return _fold(stage_name) in {_fold(s) for s in self.scheduling_stages}

    def stage_inactivity(self, job_id: str, stage_name: str) -> timedelta | None:
        """How long an application may sit in the stage before it is inactive, if alerts are on."""
        per_job = self.job(job_id).inactivity_after
        for name, threshold in per_job.items():
            if _fold(name) == _fold(stage_name):
                return threshold
        if _fold(stage_name) in {_fold(s) for s in self.inactivity_stages}:
            return self.inactivity_after
        return None

    def may_coordinate(self, email: str) -> bool:
        """Only a recruiter, coordinator or admin can be a job coordinator (unknown: yes)."""
        role = self.people_roles.get(email.lower())
        return role is None or role in JC_ROLES


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class Ownership:
    """The people one task's assignee rule can resolve to."""

    account_owner: str
    job_coordinator: str | None = None
    stage_owner: str | None = None
    candidate_coordinator: str | None = None


def job_coordinator(
    rules: OrgRules,
    job_id: str | None,
    ats_coordinator: str | None,
    ats_recruiter: str | None,
    *,
    gone: frozenset[str] = frozenset(),
) -> str | None:
    """Config override, else the ATS hiring-team coordinator, else the recruiter.

    ``gone`` holds people who left (deactivated in the ATS): they are skipped, so their
    jobs fall to the next in line until someone names a replacement.
    """
    override = rules.job(job_id).coordinator
    if override and override.lower() not in gone:
        return override.lower()
    for candidate in (ats_coordinator, ats_recruiter):
        if candidate and candidate.lower() not in gone and rules.may_coordinate(candidate):
            return candidate.lower()
    return None


def stage_owner(
    rules: OrgRules,
    job_id: str | None,
    stage_name: str | None,
    coordinator: str | None,
    *,
    gone: frozenset[str] = frozenset(),
) -> str | None:
    """The configured owner of the stage, else the job coordinator."""
    if stage_name:
        for name, owner in rules.job(job_id).stage_owners.items():
            if _fold(name) == _fold(stage_name) and owner.lower() not in gone:
                return owner.lower()
    return coordinator


def resolve(role: Role, ownership: Ownership) -> str:
    """The assignee for a role; the account owner is the last fallback, never nobody."""
    chain: tuple[str | None, ...]
    if role is Role.CANDIDATE_COORDINATOR:
        chain = (
            ownership.candidate_coordinator,
            ownership.stage_owner,
            ownership.job_coordinator,
        )
    elif role is Role.STAGE_OWNER:
        chain = (ownership.stage_owner, ownership.job_coordinator)
    elif role is Role.JOB_COORDINATOR:
        chain = (ownership.job_coordinator,)
    else:
        chain = ()
    for email in chain:
        if email:
            return email.lower()
    return ownership.account_owner.lower()
