"""Ashby records and webhook payloads -> canonical snapshots. Pure functions, no I/O.

API records (https://developers.ashbyhq.com/reference: application.list, job.list,
jobInterviewPlan.info, interviewPlan.list, interviewSchedule.list, applicationFeedback.list,
user.list) and webhook ``data`` objects (the OpenAPI ``webhooks`` section: the same shapes as
the API's ``results``) are mapped by the same functions. Links into Ashby's web app are built by
`Links`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
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
    ScheduleSnapshot,
    ScheduleStatus,
    ScorecardSnapshot,
    Snapshot,
    StageSnapshot,
    UserSnapshot,
)

Record = dict[str, Any]

DEFAULT_APP_URL = "https://app.ashbyhq.com"

# application.status enum (application.list request schema): Hired, Archived, Active, Lead.
# Archiving is how Ashby rejects (with an archiveReason).
APPLICATION_STATUS = {
    "Active": ApplicationStatus.ACTIVE,
    "Lead": ApplicationStatus.ACTIVE,
    "Hired": ApplicationStatus.HIRED,
    "Archived": ApplicationStatus.REJECTED,
}
# job.status enum (job.list request schema): Draft, Open, Closed, Archived.
JOB_STATUS = {
    "Draft": JobStatus.DRAFT,
    "Open": JobStatus.OPEN,
    "Closed": JobStatus.CLOSED,
    "Archived": JobStatus.CLOSED,
}
# interviewSchedule.status enum. Only Scheduled/Complete/Cancelled (and the in-progress
# Interviewing) describe events on a calendar; the "waiting"/"needs scheduling" ones have no
# event yet, so their (absent) events map to nothing.
SCHEDULE_STATUS = {
    "Scheduled": ScheduleStatus.SCHEDULED,
    "Interviewing": ScheduleStatus.SCHEDULED,
    "WaitingOnFeedback": ScheduleStatus.COMPLETE,
    "Complete": ScheduleStatus.COMPLETE,
    "Cancelled": ScheduleStatus.CANCELLED,
}
# hiringTeamRole.list titles (UNCONFIRMED per account: roles are configurable in Ashby).
COORDINATOR_ROLES = ("Recruiting Coordinator", "Coordinator")
RECRUITER_ROLES = ("Recruiter",)
ADMIN_ROLES = frozenset({"Organization Admin"})  # user.globalRole

APPLICATION_EVENTS = frozenset(
    {"applicationSubmit", "applicationUpdate", "candidateStageChange", "candidateHire"}
)
JOB_EVENTS = frozenset({"jobCreate", "jobUpdate"})
SCHEDULE_EVENTS = frozenset({"interviewScheduleCreate", "interviewScheduleUpdate"})
# Documented events that carry nothing we model, or nothing we can apply on its own:
# accepted, no snapshots; the poll reads what they stand for.
# - jobPosting*: a posting names its job but not the job's title/status/creation time;
#   the job's own jobPostingIds say whether it is published.
# - candidateMerge, interviewPlanTransition: the affected applications come by poll.
IGNORED_EVENTS = frozenset(
    {
        "jobPostingUpdate",
        "jobPostingPublish",
        "jobPostingUnpublish",
        "offerCreate",
        "offerUpdate",
        "offerDelete",
        "pushToHRIS",
        "surveySubmit",
        "openingCreate",
        "signatureRequestUpdate",
        "candidateMerge",
        "interviewPlanTransition",
    }
)


class IncompleteRecord(ValueError):
    """An Ashby record lacks what its snapshot needs; the caller logs it and skips it."""


class UnhandledAction(LookupError):
    """A webhook action Ashby may send that we do not know."""


@dataclass(frozen=True)
class Links:
    """Where a candidate or a job lives in Ashby's web app (connector key ``app_url``).

    ``/candidates/<id>`` is the path Ashby's own ``profileUrl`` and integrations use;
    ``/jobs/<id>`` the job page (UNCONFIRMED: no documented job URL field).
    """

    app_url: str = DEFAULT_APP_URL

    def job(self, job_id: str) -> str:
        return f"{self.app_url.rstrip('/')}/jobs/{job_id}"

    def candidate(self, candidate_id: str) -> str:
        return f"{self.app_url.rstrip('/')}/candidates/{candidate_id}"


# ---------------------------------------------------------------------- records


def map_user(row: Record) -> UserSnapshot | None:
    """A user with an e-mail; None for rows without one (API users, invitations)."""
    user_id = row.get("id")
    email = row.get("email")
    updated_at = parse_time(row.get("updatedAt"))
    if not isinstance(user_id, str) or not user_id or not isinstance(email, str) or not email:
        return None
    if updated_at is None:
        return None
    name = " ".join(str(p) for p in (row.get("firstName"), row.get("lastName")) if p) or email
    return UserSnapshot(
        id=user_id,
        email=email,
        name=name,
        updated_at=updated_at,
        role="admin" if row.get("globalRole") in ADMIN_ROLES else None,
        deactivated=row.get("isEnabled") is False,
    )


def map_job(
    job: Record,
    plan: Record | None,
    links: Links,
    *,
    plan_updated_at: datetime | None = None,
) -> JobSnapshot:
    """A job with its hiring team and, when ``plan`` (jobInterviewPlan.info) is given, its
    stages and the interviews planned in each. Without a plan (webhooks) stages are unknown."""
    job_id = _id(job)
    created_at = parse_time(job.get("createdAt"))
    updated_at = parse_time(job.get("updatedAt"))
    if created_at is None or updated_at is None or not isinstance(job.get("title"), str):
        raise IncompleteRecord("missing title or timestamps")
    team = job.get("hiringTeam")
    members = team if isinstance(team, list) else []
    stages = map_plan_stages(plan) if plan is not None else None
    # A stage added to the plan does not move the job's updatedAt: the snapshot's time is the
    # newest of both, so a snapshot with the new stage is never older than the one before.
    newest = max(t for t in (updated_at, plan_updated_at) if t is not None)
    postings = job.get("jobPostingIds")
    return JobSnapshot(
        id=job_id,
        name=str(job["title"]),
        status=JOB_STATUS.get(str(job.get("status")), JobStatus.OPEN),
        created_at=created_at,
        updated_at=newest,
        # jobPostingIds lists published postings unless includeUnpublishedJobPostingsIds.
        published=bool(postings) if isinstance(postings, list) else None,
        coordinator_email=_team_email(members, COORDINATOR_ROLES) or "",
        recruiter_email=_team_email(members, RECRUITER_ROLES) or _author_email(job) or "",
        stages=stages,
        url=links.job(job_id),
    )


def map_plan_stages(plan: Record) -> tuple[StageSnapshot, ...]:
    """jobInterviewPlan.info ``stages`` (each with ``activities[].interviews[]``) as stages."""
    stages = plan.get("stages")
    if not isinstance(stages, list):
        raise IncompleteRecord("interview plan without stages")
    out: list[StageSnapshot] = []
    for stage in sorted(
        (s for s in stages if isinstance(s, dict)),
        key=lambda s: (_int(s.get("orderInInterviewPlan")), str(s.get("id"))),
    ):
        kinds: list[InterviewKindSnapshot] = []
        seen: set[str] = set()
        for activity in stage.get("activities") or []:
            for entry in (activity or {}).get("interviews") or []:
                kind_id = (entry or {}).get("interviewId")
                if isinstance(kind_id, str) and kind_id and kind_id not in seen:
                    seen.add(kind_id)
                    kinds.append(InterviewKindSnapshot(kind_id, str(entry.get("title") or "")))
        out.append(
            StageSnapshot(
                id=_id(stage),
                name=str(stage.get("title") or ""),
                position=_int(stage.get("orderInInterviewPlan")),
                interview_kinds=tuple(kinds),
            )
        )
    return tuple(out)


def map_application(application: Record, links: Links) -> ApplicationSnapshot:
    """An application with its candidate (the embedded summary) and current interview stage.

    Ashby's application carries no "entered the stage at" time (that is in
    application.listHistory, not read here): ``stage_entered_at`` stays unknown.
    """
    application_id = _id(application)
    updated_at = parse_time(application.get("updatedAt"))
    candidate = application.get("candidate")
    job = application.get("job")
    if updated_at is None or not isinstance(candidate, dict):
        raise IncompleteRecord("missing candidate or updatedAt")
    job_id = _id(job) if isinstance(job, dict) else application.get("jobId")
    if not isinstance(job_id, str) or not job_id:
        raise IncompleteRecord("application without a job")
    stage = application.get("currentInterviewStage")
    stage_id = _id(stage) if isinstance(stage, dict) else None
    candidate_id = _id(candidate)
    team = application.get("hiringTeam")
    members = team if isinstance(team, list) else []
    email = candidate.get("primaryEmailAddress")
    return ApplicationSnapshot(
        id=application_id,
        candidate_id=candidate_id,
        job_id=job_id,
        stage_id=stage_id,
        status=APPLICATION_STATUS.get(str(application.get("status")), ApplicationStatus.ACTIVE),
        updated_at=updated_at,
        candidate=CandidateSnapshot(
            id=candidate_id,
            name=str(candidate.get("name") or f"Candidate {candidate_id}"),
            updated_at=updated_at,
            email=str(email["value"])
            if isinstance(email, dict) and isinstance(email.get("value"), str)
            else None,
            coordinator_email=_team_email(members, COORDINATOR_ROLES),
            url=links.candidate(candidate_id),
        ),
        url=links.candidate(candidate_id),
    )


def map_schedule(schedule: Record) -> list[Snapshot]:
    """One snapshot per interview event of a schedule (the event id is the schedule id we
    track: it is what a calendar invitation and a feedback form point at)."""
    schedule_id = _id(schedule)
    updated_at = parse_time(schedule.get("updatedAt"))
    application_id = schedule.get("applicationId")
    if updated_at is None or not isinstance(application_id, str) or not application_id:
        raise IncompleteRecord(f"schedule {schedule_id}: missing applicationId or updatedAt")
    status = SCHEDULE_STATUS.get(str(schedule.get("status")))
    events = schedule.get("interviewEvents")
    out: list[Snapshot] = []
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        event_id = _id(event)
        at = max(t for t in (updated_at, parse_time(event.get("updatedAt"))) if t is not None)
        if status is None:  # not (or no longer) on a calendar
            out.append(Deletion(EntityKind.SCHEDULE, event_id, at))
            continue
        stage_id = schedule.get("interviewStageId")
        kind_id = event.get("interviewId")
        snapshot = ScheduleSnapshot(
            id=event_id,
            application_id=application_id,
            status=status,
            updated_at=at,
            stage_id=stage_id if isinstance(stage_id, str) else None,
            interview_kind_id=kind_id if isinstance(kind_id, str) else None,
            starts_at=parse_time(event.get("startTime")),
            ends_at=parse_time(event.get("endTime")),
            external_event_id=event.get("interviewerCalendarEventId") or None,
            interviewers=_interviewers(event),
        )
        created = parse_time(event.get("createdAt")) or parse_time(schedule.get("createdAt"))
        if status is ScheduleStatus.CANCELLED and created is not None and created < at:
            # A cancelled schedule was scheduled first: say so, dated at its creation, so a
            # cancellation that arrives before (or instead of) its creation still reads as
            # "scheduled, then cancelled"; when the creation was seen, this one is stale.
            out.append(replace(snapshot, status=ScheduleStatus.SCHEDULED, updated_at=created))
        out.append(snapshot)
    return out


def map_feedback(feedback: Record) -> ScorecardSnapshot:
    """A submitted feedback form (applicationFeedback.list); Ashby lists submitted ones only."""
    user = feedback.get("submittedByUser")
    email = user.get("email") if isinstance(user, dict) else None
    submitted_at = parse_time(feedback.get("submittedAt"))
    application_id = feedback.get("applicationId")
    if not isinstance(email, str) or not email or submitted_at is None:
        raise IncompleteRecord("no submitter e-mail or submittedAt")
    if not isinstance(application_id, str) or not application_id:
        raise IncompleteRecord("no applicationId")
    event_id = feedback.get("interviewEventId")
    return ScorecardSnapshot(
        id=_id(feedback),
        application_id=application_id,
        interviewer_email=email,
        submitted=True,
        updated_at=parse_time(feedback.get("updatedAt")) or submitted_at,
        schedule_id=event_id if isinstance(event_id, str) and event_id else None,
        submitted_at=submitted_at,
    )


# ---------------------------------------------------------------------- webhook payloads


def snapshots_from_webhook(
    action: str, data: Record, *, now: datetime, links: Links
) -> list[Snapshot]:
    """What one webhook's ``data`` says, as snapshots (``[]`` for documented events we ignore).

    Raises `UnhandledAction` for an unknown action, KeyError/TypeError/ValueError (or
    IncompleteRecord) on data that is not the documented shape.
    """
    if action in APPLICATION_EVENTS:
        # Related webhooks of one change (candidateStageChange + applicationUpdate, /docs/
        # related-webhooks) carry the same application and must give the same snapshot, in any
        # order: so no action-dependent stage entry time (the mirror's entry falls back to the
        # time of the snapshot that moved the application).
        return [map_application(data["application"], links)]
    if action in JOB_EVENTS:
        job = map_job(data["job"], None, links)
        # Job webhooks carry the hiring team (with e-mails) but not the interview plan.
        return [job]
    if action in SCHEDULE_EVENTS:
        return map_schedule(data["interviewSchedule"])
    if action == "candidateDelete":
        # The payload names the candidate only; its applications close at the next full sync
        # (present_ids), as nothing says which they were.
        return [Deletion(EntityKind.CANDIDATE, _id(data["candidate"]), now)]
    if action in IGNORED_EVENTS:
        return []
    raise UnhandledAction(action)


def affected_resource(action: str, data: Any) -> tuple[str, str, str | None] | None:
    """(kind, id, updatedAt) of the resource a webhook is about, for the delivery id."""
    if not isinstance(data, dict):
        return None
    for kind in ("application", "job", "interviewSchedule", "jobPosting", "candidate", "offer"):
        resource = data.get(kind)
        if isinstance(resource, dict) and isinstance(resource.get("id"), str):
            updated = resource.get("updatedAt")
            return kind, resource["id"], updated if isinstance(updated, str) else None
    return None


# ---------------------------------------------------------------------- values


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


def _id(obj: Any) -> str:
    if not isinstance(obj, dict):
        raise TypeError("expected an object with an id")
    value = obj["id"]
    if not isinstance(value, str) or not value:
        raise ValueError("id is not a non-empty string")
    return value


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _team_email(members: Sequence[Any], roles: Sequence[str]) -> str | None:
    """The e-mail of the first hiring-team member with one of ``roles``."""
    for role in roles:
        for member in members:
            if isinstance(member, Mapping) and member.get("role") == role:
                email = member.get("email")
                if isinstance(email, str) and email:
                    return email
    return None


def _author_email(job: Record) -> str | None:
    author = job.get("author")
    email = author.get("email") if isinstance(author, dict) else None
    return email if isinstance(email, str) and email else None


def _interviewers(event: Record) -> tuple[InterviewerSnapshot, ...]:
    """interviewEvent ``interviewers`` are users; Ashby records no RSVP (needs_action)."""
    people = event.get("interviewers")
    emails = sorted(
        {
            str(p["email"])
            for p in (people if isinstance(people, list) else [])
            if isinstance(p, dict) and isinstance(p.get("email"), str) and p["email"]
        }
    )
    return tuple(InterviewerSnapshot(email=email) for email in emails)
