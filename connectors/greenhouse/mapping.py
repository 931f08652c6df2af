"""Greenhouse records and webhook payloads -> canonical snapshots. Pure functions, no I/O.

Harvest v3 records (https://harvestdocs.greenhouse.io) come in through `map_user`, `map_job`,
`map_application`, `map_schedule` and `map_scorecard`; webhook payloads (v1-style embedded
objects, github.com/grnhse/greenhouse-api-docs source/includes/webhooks) through
`snapshots_from_webhook`. Links to a candidate or job in Greenhouse are built by `Links`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from taskplanner.domain.snapshots import (
    ApplicationSnapshot,
    ApplicationStatus,
    CandidateSnapshot,
    Deletion,
    EntityKind,
    InterviewerSnapshot,
    InterviewKindSnapshot,
    JobSnapshot,
    JobStatus,
    Response,
    ScheduleSnapshot,
    ScheduleStatus,
    ScorecardSnapshot,
    Snapshot,
    StageSnapshot,
    UserSnapshot,
)

Record = dict[str, Any]

DEFAULT_APP_URL = "https://app.greenhouse.io"

# v3 application statuses: third-party lists disagree ("active" vs "in_process", plus paused,
# completed, unvisited for prospects). Unknown values count as active.
APPLICATION_STATUS = {
    "active": ApplicationStatus.ACTIVE,
    "in_process": ApplicationStatus.ACTIVE,
    "paused": ApplicationStatus.ACTIVE,
    "unvisited": ApplicationStatus.ACTIVE,
    "rejected": ApplicationStatus.REJECTED,
    "hired": ApplicationStatus.HIRED,
    # A prospect application promoted to a candidate application via convert_to_candidate: the
    # old row is no longer worked, so it is closed for our purposes.
    "converted": ApplicationStatus.WITHDRAWN,
    "completed": ApplicationStatus.WITHDRAWN,
}
JOB_STATUS = {"open": JobStatus.OPEN, "closed": JobStatus.CLOSED, "draft": JobStatus.DRAFT}
# v3 interview statuses (third-party spec of /v3/interviews): to_be_scheduled is a placeholder,
# scheduled is on the calendar, awaiting_feedback/complete/collect_feedback happened, skipped did
# not happen, to_be_sent/sent/received are take-home tests.
SCHEDULE_STATUS = {
    "scheduled": ScheduleStatus.SCHEDULED,
    "sent": ScheduleStatus.SCHEDULED,
    "awaiting_feedback": ScheduleStatus.COMPLETE,
    "complete": ScheduleStatus.COMPLETE,
    "collect_feedback": ScheduleStatus.COMPLETE,
    "received": ScheduleStatus.COMPLETE,
    "skipped": ScheduleStatus.CANCELLED,
}
# Not (or no longer) on anyone's calendar: emitted as a deletion of the schedule.
UNSCHEDULED = frozenset({"to_be_scheduled", "to_be_sent"})
RESPONSE = {
    "needs_action": Response.NEEDS_ACTION,
    "accepted": Response.ACCEPTED,
    "tentative": Response.TENTATIVE,
    "declined": Response.DECLINED,
}

APPLICATION_EVENTS: dict[str, ApplicationStatus | None] = {
    "new_candidate_application": None,
    "candidate_stage_change": None,
    "application_updated": None,
    "reject_candidate": ApplicationStatus.REJECTED,
    "unreject_candidate": ApplicationStatus.ACTIVE,
    "hire_candidate": ApplicationStatus.HIRED,
    "unhire_candidate": ApplicationStatus.ACTIVE,
}
JOB_EVENTS = frozenset({"job_created", "job_updated", "job_approved"})
# Documented events that carry nothing we model (or nothing we can apply): accepted, no snapshots.
# - offer_*: offers close applications only through hire/reject, which have their own events.
# - job_post_*: the payload has job_id + live but not the job's name/status/creation time that a
#   JobSnapshot needs; the jobs poll reads job_posts.live instead.
# - update_candidate / candidate_anonymized: no timestamp to order them by; the poll has them.
IGNORED_EVENTS = frozenset(
    {
        "offer_created",
        "offer_approved",
        "offer_updated",
        "offer_deleted",
        "job_post_created",
        "job_post_updated",
        "job_post_deleted",
        "new_prospect_application",
        "prospect_created",
        "update_candidate",
        "candidate_anonymized",
        "department_deleted",
        "office_deleted",
    }
)


class IncompleteRecord(ValueError):
    """A Harvest record lacks what its snapshot needs; the caller logs it and skips it."""


class UnhandledAction(LookupError):
    """A webhook action Greenhouse may send that we do not know."""


@dataclass(frozen=True)
class Links:
    """Where a job, a candidate or an application lives in Greenhouse's web app.

    ``app_url`` is the account's host: https://app.greenhouse.io, EU accounts
    https://app.eu.greenhouse.io (SPEC §6, connector key ``app_url``).
    """

    app_url: str = DEFAULT_APP_URL

    def job(self, job_id: int | str) -> str:
        return f"{self.app_url.rstrip('/')}/sdash/{job_id}"

    def candidate(self, candidate_id: int | str) -> str:
        return f"{self.app_url.rstrip('/')}/people/{candidate_id}"

    def application(self, candidate_id: int | str, application_id: int | str) -> str:
        return f"{self.candidate(candidate_id)}?application_id={application_id}"


# ---------------------------------------------------------------------- Harvest v3 records


def map_user(row: Record) -> UserSnapshot | None:
    """A user with an e-mail; None for service accounts (empty ``primary_email``)."""
    user_id = row.get("id")
    email = row.get("primary_email")
    updated_at = parse_time(row.get("updated_at"))
    if not isinstance(user_id, int) or not isinstance(email, str) or updated_at is None:
        return None
    if not email:
        return None
    name = row.get("name") or " ".join(
        part for part in (row.get("first_name"), row.get("last_name")) if part
    )
    return UserSnapshot(
        id=str(user_id),
        email=email,
        name=str(name or email),
        updated_at=updated_at,
        role="admin" if row.get("site_admin") else None,
        deactivated=bool(row.get("deactivated")),
    )


def map_job(
    job: Record,
    stages: Sequence[Record],
    kinds: Sequence[Record],
    owners: Sequence[Record],
    posts: Sequence[Record],
    emails: Mapping[int, str],
    links: Links,
) -> JobSnapshot:
    """A job with its plan (stages, interview kinds), hiring team and publication state."""
    job_id = int(job["id"])
    created_at = parse_time(job.get("created_at"))
    updated_at = parse_time(job.get("updated_at"))
    if created_at is None or updated_at is None or not isinstance(job.get("name"), str):
        raise IncompleteRecord("missing name or timestamps")
    own = [r for r in (*stages, *kinds, *owners, *posts) if r.get("job_id") == job_id]
    # The job snapshot is the whole plan: its time is the newest of its parts, so a
    # snapshot with a new stage is never older than the one the mirror holds.
    newest = max([updated_at, *(t for r in own if (t := parse_time(r.get("updated_at"))))])
    job_stages = sorted(
        (s for s in stages if s.get("job_id") == job_id and s.get("active", True)),
        key=lambda s: (s.get("sort_order") or 0, s["id"]),
    )
    stage_snapshots = tuple(
        StageSnapshot(
            id=str(stage["id"]),
            name=str(stage.get("name") or ""),
            position=int(stage.get("sort_order") or 0),
            interview_kinds=tuple(
                InterviewKindSnapshot(id=str(k["id"]), name=str(k.get("name") or ""))
                for k in sorted(
                    (
                        k
                        for k in kinds
                        if k.get("job_interview_stage_id") == stage["id"] and k.get("active", True)
                    ),
                    key=lambda k: (k.get("sort_order") or 0, k["id"]),
                )
            ),
        )
        for stage in job_stages
    )
    job_posts = [
        p for p in posts if p.get("job_id") == job_id and p.get("active", True) is not False
    ]
    return JobSnapshot(
        id=str(job_id),
        name=str(job["name"]),
        status=JOB_STATUS.get(str(job.get("status")), JobStatus.OPEN),
        created_at=created_at,
        updated_at=newest,
        published=any(bool(p.get("live")) for p in job_posts),
        # "" says "the poll looked and found nobody"; None (webhooks) says "not known".
        coordinator_email=_owner_email(owners, job_id, "coordinator", emails) or "",
        recruiter_email=_recruiter_email(job, owners, emails) or "",
        stages=stage_snapshots,
        url=links.job(job_id),
    )


def is_pipeline_application(row: Record) -> bool:
    """Prospect applications have no job or several; they are not in a hiring pipeline."""
    return (
        isinstance(row.get("id"), int)
        and not row.get("prospect")
        and isinstance(row.get("job_id"), int)
        and isinstance(row.get("candidate_id"), int)
    )


def map_application(
    application: Record,
    candidate: Record | None,
    stage_rows: Sequence[Record],
    emails: Mapping[int, str],
    links: Links,
) -> ApplicationSnapshot:
    """An application with its candidate and the entry into its current stage."""
    application_id = int(application["id"])
    updated_at = parse_time(application.get("updated_at"))
    if updated_at is None or candidate is None:
        raise IncompleteRecord("missing candidate or updated_at")
    entry = _current_stage_entry(stage_rows)
    stage_id = (
        entry.get("job_interview_stage_id")
        if entry is not None
        else application.get("job_interview_stage_id") or application.get("stage_id")
    )
    times = [updated_at, parse_time(candidate.get("updated_at"))]
    if entry is not None:
        times.append(parse_time(entry.get("updated_at")))
    candidate_id = int(application["candidate_id"])
    candidate_snapshot = CandidateSnapshot(
        id=str(candidate_id),
        name=_person_name(candidate),
        updated_at=parse_time(candidate.get("updated_at")) or updated_at,
        email=_first_email(candidate.get("email_addresses")),
        coordinator_email=lookup_email(emails, application.get("coordinator_id")),
        url=links.candidate(candidate_id),
    )
    return ApplicationSnapshot(
        id=str(application_id),
        candidate_id=str(candidate_id),
        job_id=str(application["job_id"]),
        stage_id=str(stage_id) if stage_id is not None else None,
        status=APPLICATION_STATUS.get(str(application.get("status")), ApplicationStatus.ACTIVE),
        updated_at=max(t for t in times if t is not None),
        stage_entered_at=parse_time(entry.get("entered_at")) if entry is not None else None,
        candidate=candidate_snapshot,
        url=links.application(candidate_id, application_id),
    )


def interviewer_email(row: Record, emails: Mapping[int, str]) -> str | None:
    """A /v3/interviewers row's e-mail: its own, else its ``user_id``'s (the v3 schema allows
    ``email: null``); None when it has neither."""
    email = row.get("email")
    if isinstance(email, str) and email:
        return email
    return lookup_email(emails, row.get("user_id"))


def map_schedule(
    interview: Record,
    panel: Sequence[Record],
    kinds: Mapping[int, Record],
    emails: Mapping[int, str] | None = None,
    zone: tzinfo = UTC,
) -> ScheduleSnapshot | Deletion:
    """A scheduled interview with its interviewers' answers; a deletion when it is not (or no
    longer) on anyone's calendar. ``emails`` resolves panel rows without an e-mail by user id;
    a row with neither is left out (the caller logs it)."""
    interview_id = int(interview["id"])
    updated_at = parse_time(interview.get("updated_at"))
    application_id = interview.get("application_id")
    if updated_at is None or not isinstance(application_id, int):
        raise IncompleteRecord("missing application_id or updated_at")
    newest = max([updated_at, *(t for r in panel if (t := parse_time(r.get("updated_at"))))])
    status = str(interview.get("status") or "")
    if status in UNSCHEDULED:
        return Deletion(kind=EntityKind.SCHEDULE, id=str(interview_id), at=newest)
    kind_id = interview.get("job_interview_id")
    kind = kinds.get(kind_id) if isinstance(kind_id, int) else None
    stage_id = kind.get("job_interview_stage_id") if kind is not None else None
    resolved = [(email, row) for row in panel if (email := interviewer_email(row, emails or {}))]
    interviewers = tuple(
        InterviewerSnapshot(
            email=email,
            response=RESPONSE.get(str(row.get("response_status")), Response.NEEDS_ACTION),
        )
        for email, row in sorted(resolved, key=lambda pair: pair[0])
    )
    return ScheduleSnapshot(
        id=str(interview_id),
        application_id=str(application_id),
        status=SCHEDULE_STATUS.get(status, ScheduleStatus.SCHEDULED),
        updated_at=newest,
        stage_id=str(stage_id) if stage_id is not None else None,
        interview_kind_id=str(kind_id) if kind_id is not None else None,
        starts_at=parse_time(interview.get("starts_at"))
        or _parse_day(interview.get("all_day_start_on"), zone),
        ends_at=parse_time(interview.get("ends_at"))
        or _parse_day(interview.get("all_day_end_on"), zone),
        external_event_id=interview.get("external_event_id") or None,
        interviewers=interviewers,
    )


def map_scorecard(
    scorecard: Record, interviewer: Record | None, emails: Mapping[int, str]
) -> ScorecardSnapshot:
    """A scorecard; ``interviewer`` is the /v3/interviewers row holding its id (v3 scorecards
    carry interviewer_id but no interview id: that row ties it to its scheduled interview)."""
    email = (interviewer or {}).get("email") or lookup_email(
        emails, scorecard.get("interviewer_id")
    )
    updated_at = parse_time(scorecard.get("updated_at"))
    application_id = scorecard.get("application_id")
    if not email or updated_at is None or not isinstance(application_id, int):
        raise IncompleteRecord("no interviewer e-mail, application or updated_at")
    schedule_id = (interviewer or {}).get("interview_id")
    return ScorecardSnapshot(
        id=str(scorecard["id"]),
        application_id=str(application_id),
        interviewer_email=str(email),
        submitted=scorecard.get("status") == "complete",
        updated_at=updated_at,
        schedule_id=str(schedule_id) if schedule_id is not None else None,
        submitted_at=parse_time(scorecard.get("submitted_at")),
    )


# ---------------------------------------------------------------------- webhook payloads


def snapshots_from_webhook(
    action: str,
    payload: Record,
    *,
    now: datetime,
    user_emails: Mapping[int, str],
    links: Links,
) -> list[Snapshot]:
    """What one webhook action says, as snapshots (``[]`` for documented events we ignore).

    Webhook payloads use the v1 shapes and often lack an ``updated_at``; the snapshot time is
    the payload's own newest timestamp (``last_activity_at`` for applications, the offer's
    ``resolved_at`` for a hire, the job's latest of created/opened/closed) so a late redelivery
    never beats a newer poll. Payloads with no time at all (deletions) use ``now``: a deletion
    is final. ``user_emails`` resolves hiring-team user ids the poll has already seen.
    Raises `UnhandledAction` for an unknown action, KeyError/TypeError/ValueError on a payload
    that is not the documented shape.
    """
    if action in APPLICATION_EVENTS:
        return _application_from_webhook(action, payload["application"], user_emails, links)
    if action in JOB_EVENTS:
        return [_job_from_webhook(payload["job"], user_emails, links)]
    if action in IGNORED_EVENTS:
        return []
    if action == "job_deleted":
        return [Deletion(EntityKind.JOB, _id(payload["job"]), now)]
    if action == "job_interview_stage_deleted":
        stage = payload["job_interview_stage"]
        return [Deletion(EntityKind.STAGE, _id(stage), parse_time(stage.get("updated_at")) or now)]
    if action == "interview_deleted":
        return [Deletion(EntityKind.SCHEDULE, _id(payload["interview"]), now)]
    if action == "scorecard_deleted":
        scorecard = payload["scorecard"]
        at = parse_time(scorecard.get("updated_at")) or now
        return [Deletion(EntityKind.SCORECARD, _id(scorecard), at)]
    if action == "delete_application":
        return [Deletion(EntityKind.APPLICATION, _id(payload["application"]), now)]
    if action == "delete_candidate":
        person = payload["person"]
        deleted: list[Snapshot] = [
            Deletion(EntityKind.APPLICATION, str(int(a)), now)
            for a in person.get("deleted_application_ids") or []
        ]
        return [Deletion(EntityKind.CANDIDATE, _id(person), now), *deleted]
    if action in ("merge_candidate", "candidate_merged"):
        # The documented payload's person is the candidate merged away (new_candidate_id is
        # the survivor); its applications move to the survivor and the poll picks them up.
        return [Deletion(EntityKind.CANDIDATE, _id(payload["person"]), now)]
    raise UnhandledAction(action)


def _application_from_webhook(
    action: str, application: Record, user_emails: Mapping[int, str], links: Links
) -> list[Snapshot]:
    """The application with its job (``jobs[0]``, without stages) and its stage's name
    (``current_stage``), so a job and stage no poll has brought yet are known at once."""
    if application.get("prospect"):
        return []
    application_id = _id(application)
    candidate = application["candidate"]
    jobs = application.get("jobs") or []
    job = jobs[0] if jobs else application.get("job")
    if not isinstance(job, dict):
        return []  # a jobless prospect
    offer: Record = application["offer"] if isinstance(application.get("offer"), dict) else {}
    at = parse_time(application.get("last_activity_at")) or _latest(
        offer.get("resolved_at"),
        application.get("rejected_at"),
        application.get("applied_at"),
        offer.get("created_at"),
    )
    if at is None:
        raise ValueError("no timestamp in the application")
    status_value = application.get("status")
    status = (
        APPLICATION_STATUS.get(status_value, ApplicationStatus.ACTIVE)
        if isinstance(status_value, str)
        else APPLICATION_EVENTS[action] or ApplicationStatus.ACTIVE
    )
    stage = application.get("current_stage")
    stage_id = _id(stage) if isinstance(stage, dict) else None
    stage_name = stage.get("name") if isinstance(stage, dict) else None
    # Greenhouse does not say when the stage was entered; for a stage change the delivery's
    # newest time (last_activity_at) is the best estimate, for a new application applied_at.
    entered: datetime | None = None
    if action in ("candidate_stage_change", "unhire_candidate"):
        entered = at
    elif action == "new_candidate_application":
        entered = parse_time(application.get("applied_at")) or at
    candidate_id = _id(candidate)
    coordinator = candidate.get("coordinator")
    embedded: JobSnapshot | None
    try:
        embedded = _job_from_webhook(job, user_emails, links)
    except (KeyError, TypeError, ValueError):
        embedded = None  # a job object without name or dates: the poll brings it
    return [
        ApplicationSnapshot(
            id=application_id,
            candidate_id=candidate_id,
            job_id=_id(job),
            stage_id=stage_id,
            status=status,
            updated_at=at,
            stage_entered_at=entered,
            candidate=CandidateSnapshot(
                id=candidate_id,
                name=_person_name(candidate),
                updated_at=at,
                email=_first_email(candidate.get("email_addresses")),
                coordinator_email=(coordinator or {}).get("email") or None,
                url=links.candidate(candidate_id),
            ),
            url=links.application(candidate_id, application_id),
            stage_name=stage_name if isinstance(stage_name, str) and stage_name else None,
            job=embedded,
        ),
    ]


def _job_from_webhook(job: Record, user_emails: Mapping[int, str], links: Links) -> JobSnapshot:
    created_at = parse_time(job.get("created_at"))
    if created_at is None or not isinstance(job.get("name"), str):
        raise ValueError("job without name or created_at")
    updated_at = _latest(job.get("created_at"), job.get("opened_at"), job.get("closed_at"))
    job_id = _id(job)
    # Job webhooks name the hiring team by user id only, and say nothing of stages or posts.
    # Ids the connector has already polled (users partition) resolve to e-mails, so a new job's
    # task goes to its coordinator at once rather than to the account owner until the next
    # poll; unknown ids, stages and posts stay None (unknown) and the poll fills them in.
    team = job.get("hiring_team")
    team = team if isinstance(team, dict) else {}
    recruiter = _team_email(team.get("recruiters"), user_emails) or lookup_email(
        user_emails, job.get("created_by_id")
    )
    return JobSnapshot(
        id=job_id,
        name=job["name"],
        status=JOB_STATUS.get(str(job.get("status")), JobStatus.OPEN),
        created_at=created_at,
        updated_at=updated_at or created_at,
        coordinator_email=_team_email(team.get("coordinators"), user_emails),
        recruiter_email=recruiter,
        url=links.job(job_id),
    )


def _team_email(members: Any, user_emails: Mapping[int, str]) -> str | None:
    """The first hiring-team member (``{"user_id": ...}``) whose e-mail we know."""
    for member in members if isinstance(members, list) else ():
        if isinstance(member, dict):
            email = lookup_email(user_emails, member.get("user_id"))
            if email:
                return email
    return None


# ---------------------------------------------------------------------- values


def format_time(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds, rounded down so a ``gte`` filter never skips a row."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def lookup_email(emails: Mapping[int, str], user_id: Any) -> str | None:
    return emails.get(user_id) if isinstance(user_id, int) else None


def _parse_day(value: Any, zone: tzinfo = UTC) -> datetime | None:
    """A date-only ``_on`` field (docs/standardizations) as midnight of that day in ``zone``
    (the account's, connector key ``time_zone``): the day an all-day interview names is a
    local day. The end day is exclusive, as in the v1 example (start 08-22, end 08-23)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), time(0), zone).astimezone(UTC)
    except ValueError:
        return None


def _latest(*values: Any) -> datetime | None:
    times = [t for v in values if (t := parse_time(v)) is not None]
    return max(times) if times else None


def _id(obj: Any) -> str:
    if not isinstance(obj, dict):
        raise TypeError("expected an object with an id")
    value = obj["id"]
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ValueError("id is not an integer or string")
    return str(value)


def _person_name(person: Mapping[str, Any]) -> str:
    parts = [person.get("first_name"), person.get("last_name")]
    return " ".join(str(p) for p in parts if p).strip() or f"Candidate {person.get('id')}"


def _first_email(addresses: Any) -> str | None:
    if not isinstance(addresses, list):
        return None
    for address in addresses:
        if isinstance(address, dict) and isinstance(address.get("value"), str) and address["value"]:
            return str(address["value"])
    return None


def _owner_email(
    owners: Sequence[Record], job_id: int, role: str, emails: Mapping[int, str]
) -> str | None:
    # job_owners: type sourcer|recruiter|coordinator, "responsible" marks the default assignee.
    rows = sorted(
        (o for o in owners if o.get("job_id") == job_id and o.get("type") == role),
        key=lambda o: (not o.get("responsible"), o.get("id") or 0),
    )
    for row in rows:
        email = lookup_email(emails, row.get("user_id"))
        if email:
            return email
    return None


def _recruiter_email(
    job: Record, owners: Sequence[Record], emails: Mapping[int, str]
) -> str | None:
    recruiter = _owner_email(owners, int(job["id"]), "recruiter", emails)
    creator = job.get("created_by_id")  # v1's field; the v3 job schema may not carry it
    if recruiter is None and isinstance(creator, int):
        return emails.get(creator)
    return recruiter


def _current_stage_entry(rows: Sequence[Record]) -> Record | None:
    """The row with ``current: true`` (``exited_at`` null); None when the application left
    every stage (hired: v3 has no stage for terminal applications)."""
    current = [
        r
        for r in rows
        if r.get("current") or (r.get("current") is None and r.get("exited_at") is None)
    ]
    if not current:
        return None
    oldest = datetime.min.replace(tzinfo=UTC)
    return max(current, key=lambda r: (parse_time(r.get("entered_at")) or oldest, r.get("id") or 0))
