"""What every loopback fake ATS offers its drivers: the sandbox organisation and the test suites.

`FakeGreenhouse`, `FakeLever` and `FakeAshby` each serve their provider's documented API on
127.0.0.1; this protocol is the editable organisation behind them, in *our* vocabulary, so one
scripted organisation (``taskplanner sandbox --ats ...``) and one end-to-end suite drive all
three. Ids are the provider's own (Greenhouse: integers, Lever and Ashby: UUID strings).

Where a provider cannot express an operation (Lever has no per-interviewer RSVP in its API, say)
the fake raises `NotSupportedByProvider` and leaves ``capabilities`` without the matching name,
so suites skip that scenario and the README's provider table can say why.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

Id = TypeVar("Id")

# Our role vocabulary ([[people]].role); each fake maps it to its provider's access roles.
PersonRole = Literal["admin", "coordinator", "recruiter", "hiring_manager", "interviewer"]
Response = Literal["needs_action", "accepted", "tentative", "declined"]

# Optional behaviours a provider may or may not have (see `FakeATS.capabilities`).
INTERVIEWER_RSVP = "interviewer_rsvp"  # the ATS records each interviewer's answer
JOB_PUBLISHING = "job_publishing"  # jobs are published (job board) apart from being opened
PER_JOB_STAGES = "per_job_stages"  # each job has its own stages (Lever: account-wide)
STAGE_REMOVAL = "stage_removal"  # a stage can be removed from a job
HIRING_TEAM_COORDINATOR = "hiring_team_coordinator"  # a job names its coordinator
CANDIDATE_COORDINATOR = "candidate_coordinator"  # an application names its own coordinator
HARD_DELETES = "hard_deletes"  # candidates (with their applications) can be deleted outright
CAPABILITIES = frozenset(
    {
        INTERVIEWER_RSVP,
        JOB_PUBLISHING,
        PER_JOB_STAGES,
        STAGE_REMOVAL,
        HIRING_TEAM_COORDINATOR,
        CANDIDATE_COORDINATOR,
        HARD_DELETES,
    }
)

# The stages a job gets unless told otherwise: (stage name, interview kinds in it).
DEFAULT_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Application Review", ("Application Review",)),
    ("Phone Screen", ("Recruiter Phone Screen",)),
    ("Technical Interview", ("Technical Interview",)),
    ("Onsite", ("Onsite Panel", "Hiring Manager Interview")),
    ("Offer", ()),
)


class NotSupportedByProvider(NotImplementedError):  # noqa: N818 - reads as what happened
    """The provider has no such operation (its fake says which, and why, in the message)."""


class FakeATSError(Exception):
    """A driver asked the fake organisation for something that does not exist."""


@dataclass(frozen=True)
class ConnectorSettings:
    """How a connector reaches a fake: its ``[connectors.<name>]`` table (``type`` included)
    and the environment its ``*_env`` keys name (credentials, the webhook secret).

    The sandbox passes both to ``parse_config``; test suites build the same configuration.
    """

    table: dict[str, Any]
    environ: dict[str, str]


@runtime_checkable
class SignedDelivery(Protocol):
    """One webhook POST a fake made: exactly the bytes and headers the provider would send."""

    body: bytes
    headers: dict[str, str]

    @property
    def delivered(self) -> bool: ...


@runtime_checkable
class FakeATS(Protocol[Id]):
    """An ATS organisation served on 127.0.0.1, changed through these methods.

    Every change bumps the records' provider timestamps and, when a webhook target is set,
    sends the signed webhook the provider documents for it (synchronously unless the fake
    was made with ``async_webhooks=True``; then ``flush_webhooks()`` waits for them).
    A fake can be made with no arguments (127.0.0.1, a free port): the sandbox and the
    conformance suite (``tests/test_fake_ats.py``) make it that way.
    """

    provider: str  # "greenhouse" | "lever" | "ashby": the connector type it stands in for
    capabilities: frozenset[str]

    # -------------------------------------------------------------- lifecycle
    def start(self) -> Any: ...
    def stop(self) -> None: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...

    @property
    def base_url(self) -> str:
        """The URL the connector's ``base_url`` points at."""
        ...

    def connector_settings(self, webhook_secret: str) -> ConnectorSettings:
        """The connector table and environment that point a ``provider`` connector at this
        fake; its webhooks are to be verified with ``webhook_secret`` (the same one
        `configure_webhook` is later given)."""
        ...

    # -------------------------------------------------------------- credentials and faults
    def revoke_credentials(self) -> None:
        """Reject the configured credentials until `restore_credentials` (401, or 403 where
        the provider documents that for a revoked key, as Ashby does)."""

    def restore_credentials(self) -> None: ...

    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` API requests (under ``path``, if given) with ``status``."""

    def throttle_next(
        self, times: int = 1, *, retry_after: float | str = 1, path: str | None = None
    ) -> None:
        """The provider's documented throttling answer, ``times`` times."""

    def slow_next(self, delay: float, *, times: int = 1, path: str | None = None) -> None: ...
    def truncate_next(self, *, times: int = 1, path: str | None = None) -> None: ...
    def disconnect_next(self, *, times: int = 1, path: str | None = None) -> None: ...

    requests: Counter[str]  # request path -> count

    def reset_counters(self) -> None: ...

    # -------------------------------------------------------------- webhooks
    webhook_deliveries: list[Any]  # each a `SignedDelivery`

    def configure_webhook(self, url: str, secret: str, *, enabled: bool = True) -> None: ...
    def flush_webhooks(self, timeout: float = 10.0) -> None: ...
    def redeliver(self, delivery: Any) -> Any:
        """Send a past delivery again, byte for byte (the provider's retry)."""
        ...

    # -------------------------------------------------------------- people
    def add_user(
        self,
        email: str,
        first_name: str,
        last_name: str,
        *,
        role: PersonRole | None = None,
    ) -> Id: ...

    def user_id(self, email: str) -> Id: ...
    def deactivate_user(self, user_id: Id) -> None: ...

    # -------------------------------------------------------------- jobs and their stages
    def create_job(
        self,
        name: str,
        *,
        stages: Sequence[tuple[str, Sequence[str]]] = DEFAULT_STAGES,
        status: Literal["open", "draft", "closed"] = "open",
        recruiter_id: Id | None = None,
        coordinator_id: Id | None = None,
    ) -> Id: ...

    def stage_id(self, job_id: Id, name: str) -> Id: ...
    def stage_ids(self, job_id: Id) -> list[Id]: ...
    def interview_kind_id(self, job_id: Id, stage_name: str, name: str | None = None) -> Id: ...
    def add_stage(self, job_id: Id, name: str, interviews: Sequence[str] = ()) -> Id: ...
    def remove_stage(self, stage_id: Id) -> None: ...
    def add_interview_kind(self, stage_id: Id, name: str) -> Id: ...
    def publish_job(self, job_id: Id) -> Any: ...
    def unpublish_job(self, job_id: Id) -> None: ...
    def close_job(self, job_id: Id) -> None: ...
    def rename_job(self, job_id: Id, name: str) -> None: ...
    def set_job_coordinator(self, job_id: Id, user_id: Id) -> None: ...

    # -------------------------------------------------------------- candidates
    def add_candidate_application(
        self,
        job_id: Id,
        first_name: str,
        last_name: str,
        email: str,
        *,
        stage_id: Id | None = None,
        coordinator_id: Id | None = None,
    ) -> tuple[Id, Id]:
        """A new candidate applying to a job: ``(candidate id, application id)``."""
        ...

    def move_application(self, application_id: Id, stage_id: Id) -> None: ...
    def advance_application(self, application_id: Id) -> Id: ...
    def reject_application(self, application_id: Id) -> None: ...
    def unreject_application(self, application_id: Id) -> None: ...
    def hire(self, application_id: Id) -> None: ...
    def delete_application(self, application_id: Id) -> None: ...
    def delete_candidate(self, candidate_id: Id) -> None: ...

    # -------------------------------------------------------------- interviews and scorecards
    def schedule_interview(
        self,
        application_id: Id,
        interview_kind_id: Id,
        interviewer_ids: Sequence[Id],
        starts_at: datetime,
        ends_at: datetime,
        *,
        external_event_id: str | None = None,
        organizer_id: Id | None = None,
    ) -> Id: ...

    def reschedule_interview(self, interview_id: Id, starts_at: datetime, ends_at: datetime
                             ) -> None: ...
    def add_interviewer(self, interview_id: Id, user_id: Id) -> None: ...
    def remove_interviewer(self, interview_id: Id, user_id: Id) -> None: ...
    def set_interviewer_response(self, interview_id: Id, user_id: Id, response: Response
                                 ) -> None: ...
    def cancel_interview(self, interview_id: Id) -> None: ...
    def submit_scorecard(self, interview_id: Id, user_id: Id) -> Id: ...
    def delete_scorecard(self, scorecard_id: Id) -> None: ...


# ---------------------------------------------------------------------- a small organisation


@dataclass
class SeededOrganisation:
    """Ids of what `seed_organisation` created, for tests and benchmarks to act on."""

    coordinator_id: Any
    recruiter_id: Any
    interviewer_ids: list[Any]
    job_ids: list[Any]
    application_ids: list[Any] = field(default_factory=list)
    candidate_ids: list[Any] = field(default_factory=list)
    # application id -> its job, and the stage it was put in (unless moved since, still is in)
    job_of: dict[Any, Any] = field(default_factory=dict)
    stage_of: dict[Any, Any] = field(default_factory=dict)


_FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald", "Joan",
                "Niklaus", "Radia", "Tim", "Margaret", "Dennis", "Hedy", "John")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth",
               "Clarke", "Wirth", "Perlman", "Lee", "Hamilton", "Ritchie", "Lamarr", "Backus")
_JOB_NAMES = ("Backend Engineer", "Product Designer", "Data Scientist", "Site Reliability Engineer",
              "Engineering Manager", "Recruiting Coordinator", "Développeur·se Frontend")


def seed_organisation(
    fake: FakeATS[Any],
    *,
    seed: int = 0,
    jobs: int = 2,
    applications_per_job: int = 3,
    domain: str = "acme.example",
) -> SeededOrganisation:
    """A small, deterministic organisation: a coordinator, a recruiter, three interviewers,
    ``jobs`` jobs with the default stages (published where the provider publishes jobs) and
    applications spread over their stages (never straight into the last one, Offer)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    coordinator = fake.add_user(f"cora@{domain}", "Cora", "Coordinator", role="coordinator")
    # Rick recruits and administers the account (Greenhouse: a site admin).
    recruiter = fake.add_user(f"rick@{domain}", "Rick", "Recruiter", role="admin")
    interviewers = [
        fake.add_user(f"{first.lower()}@{domain}", first, "Interviewer", role="interviewer")
        for first in ("Ivy", "Igor", "Ines")
    ]
    org = SeededOrganisation(coordinator, recruiter, interviewers, [])
    for index in range(jobs):
        name = _JOB_NAMES[(seed + index) % len(_JOB_NAMES)]
        named = HIRING_TEAM_COORDINATOR in fake.capabilities  # else the ATS cannot say
        job_id = fake.create_job(
            name, recruiter_id=recruiter, coordinator_id=coordinator if named else None
        )
        if JOB_PUBLISHING in fake.capabilities:
            fake.publish_job(job_id)
        org.job_ids.append(job_id)
        stages = fake.stage_ids(job_id)
        for _ in range(applications_per_job):
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            email = f"{first}.{last}.{rng.randrange(10_000)}@example.com".lower()
            stage = stages[rng.randrange(len(stages) - 1)]
            candidate_id, application_id = fake.add_candidate_application(
                job_id, first, last, email, stage_id=stage
            )
            org.candidate_ids.append(candidate_id)
            org.application_ids.append(application_id)
            org.job_of[application_id] = job_id
            org.stage_of[application_id] = stage
    return org
