"""Lever records -> canonical snapshots. Pure functions, no I/O.

Docs: https://hire.lever.co/developer/documentation, reference pages Opportunities,
Applications, Postings, Stages, Archive Reasons, Users, Interviews, Feedback and Feedback
Templates. Every timestamp there is milliseconds since the epoch.

Lever's stages and feedback templates (our interview kinds) belong to the account, not to a
posting: every posting's pipeline is the whole account list. Our mirror keys a stage by its id
within one job, so a Lever stage appears in each posting as ``<posting id>:<stage id>`` (and a
template as ``<posting id>:<template id>``): the same Lever stage seen in two postings is two
stages of ours, each with its own set-up and owner, as a coordinator sees them per job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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
    StageSnapshot,
    UserSnapshot,
)

Record = dict[str, Any]

DEFAULT_APP_URL = "https://hire.lever.co"

# Postings > state: published (on job sites), internal ("unlisted": open, on no job site),
# closed, draft, pending (awaiting approval), rejected (approval refused).
POSTING_STATUS = {
    "published": JobStatus.OPEN,
    "internal": JobStatus.OPEN,
    "closed": JobStatus.CLOSED,
    "draft": JobStatus.DRAFT,
    "pending": JobStatus.DRAFT,
    "rejected": JobStatus.DRAFT,
}
# Users > accessRole. Only the administrators are named by the role; a "team member" may be a
# recruiter or a coordinator, which Lever does not say.
ACCESS_ROLE = {"super admin": "admin", "admin": "admin", "interviewer": "interviewer"}


class IncompleteRecord(ValueError):
    """A Lever record lacks what its snapshot needs; the caller logs it and skips it."""


@dataclass(frozen=True)
class Links:
    """Where an opportunity or a posting lives in Lever's web app (``app_url``, default
    https://hire.lever.co; EU accounts https://hire.eu.lever.co).

    A candidate's page is per opportunity: ``urls.show`` of the Opportunities example is
    ``https://hire.lever.co/candidates/<opportunity id>``. UNCONFIRMED: the posting page,
    ``/jobs/postings/<posting id>``, is not in the API docs (postings' ``urls`` are job-site
    links).
    """

    app_url: str = DEFAULT_APP_URL

    def job(self, posting_id: str) -> str:
        return f"{self.app_url.rstrip('/')}/jobs/postings/{posting_id}"

    def candidate(self, opportunity_id: str) -> str:
        return f"{self.app_url.rstrip('/')}/candidates/{opportunity_id}"


def in_posting(posting_id: str, account_id: str) -> str:
    """The id of an account-wide stage or template inside one posting's pipeline."""
    return f"{posting_id}:{account_id}"


def from_ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def to_ms(moment: datetime) -> int:
    """Milliseconds, rounded down so an inclusive ``*_start`` filter never skips a record."""
    return int(moment.astimezone(UTC).timestamp() * 1000)


def ref(value: Any) -> str | None:
    """An id, whether Lever sent it bare or expanded into an object."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------------- users


def map_user(row: Record) -> UserSnapshot | None:
    """A user with an e-mail. Lever gives users no ``updatedAt``: the newest of ``createdAt``
    and ``deactivatedAt`` dates the snapshot (a changed role at the same time still applies:
    the mirror takes a snapshot of equal time that says something new)."""
    user_id, email = ref(row.get("id")), row.get("email")
    created = from_ms(row.get("createdAt"))
    if user_id is None or not isinstance(email, str) or not email or created is None:
        return None
    deactivated = from_ms(row.get("deactivatedAt"))
    return UserSnapshot(
        id=user_id,
        email=email,
        name=str(row.get("name") or email),
        updated_at=max(created, deactivated or created),
        role=ACCESS_ROLE.get(str(row.get("accessRole") or "")),
        deactivated=deactivated is not None,
    )


# ---------------------------------------------------------------------- postings


def map_job(
    posting: Record,
    stages: Sequence[Record],
    templates: Sequence[Record],
    emails: Mapping[str, str],
    links: Links,
) -> JobSnapshot:
    """A posting with the account's pipeline: every stage, in the account's order, with the
    feedback templates that belong to it.

    The snapshot's time is the newest of the posting's ``updatedAt`` and its templates'
    ``updatedAt``. Stages carry no time at all: a new or renamed stage changes what the
    snapshot says at the same time, which the mirror applies.
    """
    posting_id = ref(posting.get("id"))
    created = from_ms(posting.get("createdAt"))
    updated = from_ms(posting.get("updatedAt"))
    if posting_id is None or created is None or updated is None:
        raise IncompleteRecord("missing id or timestamps")
    if not isinstance(posting.get("text"), str):
        raise IncompleteRecord("missing text (the posting's title)")
    by_stage: dict[str, list[Record]] = {}
    for template in templates:
        owner_stage = ref(template.get("stage"))
        if owner_stage is not None and ref(template.get("id")) is not None:
            by_stage.setdefault(owner_stage, []).append(template)
    times = [updated]
    snapshots = []
    for position, stage in enumerate(s for s in stages if ref(s.get("id")) is not None):
        stage_id = str(ref(stage.get("id")))
        kinds = sorted(by_stage.get(stage_id, []), key=lambda t: (str(t.get("text")), t["id"]))
        times.extend(t for k in kinds if (t := from_ms(k.get("updatedAt"))) is not None)
        snapshots.append(
            StageSnapshot(
                id=in_posting(posting_id, stage_id),
                name=str(stage.get("text") or ""),
                position=position,
                interview_kinds=tuple(
                    InterviewKindSnapshot(
                        id=in_posting(posting_id, str(k["id"])), name=str(k.get("text") or "")
                    )
                    for k in kinds
                ),
            )
        )
    state = str(posting.get("state") or "")
    owner = ref(posting.get("owner"))
    return JobSnapshot(
        id=posting_id,
        name=posting["text"],
        status=POSTING_STATUS.get(state, JobStatus.OPEN),
        created_at=created,
        updated_at=max(times),
        published=state == "published",
        # Lever postings name an owner, a hiring manager and followers, never a coordinator:
        # "" says "known to be nobody", so the job's recruiter (the owner) coordinates.
        coordinator_email="",
        recruiter_email=_email_of(posting.get("owner"), owner, emails) or "",
        stages=tuple(snapshots),
        url=links.job(posting_id),
    )


# ---------------------------------------------------------------------- opportunities


def posting_of(opportunity: Record) -> tuple[str, Record] | None:
    """The posting and application of an opportunity (``expand=applications``); None for a
    lead with no posting. Since 2020 an opportunity has at most one application."""
    for application in opportunity.get("applications") or []:
        if isinstance(application, dict) and (posting := ref(application.get("posting"))):
            return posting, application
    return None


def map_application(
    opportunity: Record,
    reason_types: Mapping[str, str],
    emails: Mapping[str, str],
    links: Links,
) -> ApplicationSnapshot | None:
    """An opportunity (with ``expand=applications``) as our application of its posting, with
    the contact as the candidate and the opportunity owner as the candidate's coordinator.
    None for an opportunity without a posting (a lead, not in any pipeline)."""
    opportunity_id = ref(opportunity.get("id"))
    updated = from_ms(opportunity.get("updatedAt"))
    contact = ref(opportunity.get("contact"))
    if opportunity_id is None or updated is None or contact is None:
        raise IncompleteRecord("missing id, contact or updatedAt")
    found = posting_of(opportunity)
    if found is None:
        return None
    posting, _application = found
    stage = ref(opportunity.get("stage"))
    owner_email = _email_of(opportunity.get("owner"), ref(opportunity.get("owner")), emails)
    url = _show_url(opportunity) or links.candidate(opportunity_id)
    emails_list = [e for e in opportunity.get("emails") or [] if isinstance(e, str) and e]
    return ApplicationSnapshot(
        id=opportunity_id,
        candidate_id=contact,
        job_id=posting,
        stage_id=in_posting(posting, stage) if stage else None,
        status=application_status(opportunity.get("archived"), reason_types),
        updated_at=updated,
        stage_entered_at=_stage_entered(opportunity, stage),
        candidate=CandidateSnapshot(
            id=contact,
            name=str(opportunity.get("name") or f"Candidate {contact}"),
            updated_at=updated,
            email=emails_list[0] if emails_list else None,
            coordinator_email=owner_email,
            url=url,
        ),
        url=url,
    )


def application_status(archived: Any, reason_types: Mapping[str, str]) -> ApplicationStatus:
    """Opportunities > archived: null while in the pipeline, else ``{"archivedAt", "reason"}``
    whose reason's ``type`` is ``hired`` or ``non-hired`` (Archive Reasons)."""
    if not isinstance(archived, dict):
        return ApplicationStatus.ACTIVE
    reason = ref(archived.get("reason"))
    if reason is not None and reason_types.get(reason) == "hired":
        return ApplicationStatus.HIRED
    return ApplicationStatus.REJECTED


def _stage_entered(opportunity: Record, stage: str | None) -> datetime | None:
    """When the opportunity entered its current stage: the last ``stageChanges`` entry into it,
    else ``lastAdvancedAt``."""
    changes = [c for c in opportunity.get("stageChanges") or [] if isinstance(c, dict)]
    for change in reversed(changes):
        if ref(change.get("toStageId")) == stage:
            return from_ms(change.get("updatedAt"))
    return from_ms(opportunity.get("lastAdvancedAt"))


def _show_url(opportunity: Record) -> str | None:
    urls = opportunity.get("urls")
    show = urls.get("show") if isinstance(urls, dict) else None
    return show if isinstance(show, str) and show.startswith("https://") else None


# ---------------------------------------------------------------------- interviews and feedback


def map_schedule(interview: Record, opportunity_id: str, posting: str | None) -> ScheduleSnapshot:
    """One interview (of a panel) as a schedule.

    Lever's interviews have no ``updatedAt``: the snapshot is dated by the newest of
    ``createdAt`` and ``canceledAt``; a reschedule or a changed panel says something new at
    the same time, which the mirror applies. Lever records no per-interviewer answer (the
    calendar does), so every interviewer is ``needs_action`` here.
    """
    interview_id = ref(interview.get("id"))
    created = from_ms(interview.get("createdAt"))
    if interview_id is None or created is None:
        raise IncompleteRecord("missing id or createdAt")
    cancelled = from_ms(interview.get("canceledAt"))
    starts = from_ms(interview.get("date"))
    duration = interview.get("duration")
    ends = (
        starts + timedelta(minutes=duration)
        if starts is not None and isinstance(duration, int) and not isinstance(duration, bool)
        else None
    )
    postings = [p for p in (ref(v) for v in interview.get("postings") or []) if p]
    posting = postings[0] if postings else posting
    stage = ref(interview.get("stage"))
    template = ref(interview.get("feedbackTemplate"))
    interviewers = tuple(
        InterviewerSnapshot(email=str(person["email"]), name=person.get("name") or None)
        for person in sorted(
            (p for p in interview.get("interviewers") or [] if isinstance(p, dict)),
            key=lambda p: str(p.get("email") or ""),
        )
        if isinstance(person.get("email"), str) and person["email"]
    )
    return ScheduleSnapshot(
        id=interview_id,
        application_id=opportunity_id,
        status=ScheduleStatus.CANCELLED if cancelled is not None else ScheduleStatus.SCHEDULED,
        updated_at=max(created, cancelled or created),
        stage_id=in_posting(posting, stage) if posting and stage else None,
        interview_kind_id=in_posting(posting, template) if posting and template else None,
        starts_at=starts,
        ends_at=ends,
        external_event_id=None,  # Lever's interviews carry no calendar event id
        interviewers=interviewers,
    )


def map_feedback(
    form: Record, opportunity_id: str, emails: Mapping[str, str]
) -> ScorecardSnapshot | Deletion | None:
    """A feedback form as a scorecard: submitted once ``completedAt`` is set; a form with
    ``deletedAt`` is a deletion. None for a form that is not an interview's (general feedback
    has no interview) or whose author we cannot name."""
    form_id = ref(form.get("id"))
    updated = from_ms(form.get("updatedAt")) or from_ms(form.get("createdAt"))
    if form_id is None or updated is None:
        raise IncompleteRecord("missing id or timestamps")
    deleted = from_ms(form.get("deletedAt"))
    if deleted is not None:
        return Deletion(EntityKind.SCORECARD, form_id, max(deleted, updated))
    interview = ref(form.get("interview"))
    email = _email_of(form.get("user"), ref(form.get("user")), emails)
    if interview is None or not email:
        return None
    completed = from_ms(form.get("completedAt"))
    return ScorecardSnapshot(
        id=form_id,
        application_id=opportunity_id,
        interviewer_email=email,
        submitted=completed is not None,
        updated_at=updated,
        schedule_id=interview,
        submitted_at=completed,
    )


def _email_of(value: Any, user_id: str | None, emails: Mapping[str, str]) -> str | None:
    """A user's e-mail: from the expanded object when Lever sent one, else from the users
    the connector has listed."""
    if isinstance(value, dict) and isinstance(value.get("email"), str) and value["email"]:
        return str(value["email"])
    return emails.get(user_id) if user_id else None
