"""The sandbox's generated organisation and the changes it goes through on a timer.

`SandboxOrganisation.build()` fills a fake ATS (any `FakeATS`: Greenhouse by default) and the
fake Google Calendar before the daemon's first (baseline) sync,
which opens the backlog already waiting (go-live); `changes()` then yields scripted
and random changes — candidates moving, interviewers declining, scorecards due, a job left
unpublished — so tasks of every kind appear and close by themselves. The same seed gives the
same organisation and the same sequence of changes. Answers to invitations always come from the
calendar (every ATS has one behind it); what an ATS cannot do (its `capabilities`) is skipped.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from taskplanner.providers import display_name
from taskplanner.sandbox.fake_ats import (
    HIRING_TEAM_COORDINATOR,
    JOB_PUBLISHING,
    PER_JOB_STAGES,
    FakeATS,
    FakeATSError,
    NotSupportedByProvider,
    PersonRole,
)
from taskplanner.sandbox.fake_google_calendar import Attendee, FakeGoogleCalendar

DOMAIN = "acme.example"
ROOMS = (
    ("room-berlin-1@resource.calendar.google.com", "Berlin 1"),
    ("room-berlin-2@resource.calendar.google.com", "Berlin 2"),
)
SCHEDULING_STAGES = ("Phone Screen", "Technical Interview", "Onsite")
_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald", "Joan",
          "Niklaus", "Radia", "Tim", "Margaret", "Dennis", "Hedy", "John", "Sophie", "Linus")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth",
         "Clarke", "Wirth", "Perlman", "Lee", "Hamilton", "Ritchie", "Lamarr", "Backus")
_JOBS = ("Backend Engineer", "Product Designer", "Data Scientist", "Site Reliability Engineer",
         "Engineering Manager", "Frontend Engineer", "Security Engineer")


@dataclass(frozen=True)
class Person:
    email: str
    first: str
    last: str
    role: PersonRole  # as in [[people]]

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


PEOPLE = (
    Person(f"ada@{DOMAIN}", "Ada", "Admin", "admin"),
    Person(f"cora@{DOMAIN}", "Cora", "Coordinator", "coordinator"),
    Person(f"sam@{DOMAIN}", "Sam", "Scheduler", "coordinator"),
    Person(f"rick@{DOMAIN}", "Rick", "Recruiter", "recruiter"),
    Person(f"hank@{DOMAIN}", "Hank", "Manager", "hiring_manager"),
    Person(f"ivy@{DOMAIN}", "Ivy", "Interviewer", "interviewer"),
    Person(f"igor@{DOMAIN}", "Igor", "Interviewer", "interviewer"),
    Person(f"ines@{DOMAIN}", "Ines", "Interviewer", "interviewer"),
    Person(f"omar@{DOMAIN}", "Omar", "Interviewer", "interviewer"),
)
COORDINATORS = tuple(p.email for p in PEOPLE if p.role == "coordinator")
INTERVIEWERS = tuple(p.email for p in PEOPLE if p.role == "interviewer")


@dataclass
class Job:
    id: Any  # the provider's own id (Greenhouse: an integer, Lever and Ashby: a UUID)
    name: str
    coordinator: str


@dataclass
class Application:
    id: Any
    job: Job
    name: str
    email: str
    stage: str
    status: str = "active"  # active | rejected | hired
    interviews: list[Any] = field(default_factory=list)


@dataclass
class Interview:
    id: Any
    application: Application
    event_id: str | None
    calendar: str
    interviewers: list[str]
    room: str | None
    starts_at: datetime
    cancelled: bool = False


@dataclass(frozen=True)
class Change:
    """One step of the organisation's life: wait ``after`` seconds, then ``apply()``."""

    after: float
    description: str
    apply: Callable[[], object]


class SandboxOrganisation:
    """A small recruiting team in the fakes, and what happens to it over time."""

    def __init__(
        self,
        ats: FakeATS[Any],
        google: FakeGoogleCalendar,
        *,
        seed: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ats = ats
        self.google = google
        self.rng = random.Random(seed)  # noqa: S311 - sandbox data, not security
        self.clock = clock
        self.users: dict[str, Any] = {}
        self.jobs: list[Job] = []
        self.applications: list[Application] = []
        self.interviews: list[Interview] = []
        self._events = 0
        self._candidates = 0
        self._followups: list[Change] = []

    # ------------------------------------------------------------------ initial state

    @property
    def calendars(self) -> list[str]:
        """Calendars the Google connector syncs: the coordinators' (they organise interviews)."""
        return list(COORDINATORS)

    def build(self) -> None:
        """The organisation as it is before taskplanner first looks (the baseline sync)."""
        for person in PEOPLE:
            self.users[person.email] = self.ats.add_user(
                person.email, person.first, person.last, role=person.role
            )
        for calendar in self.calendars:
            self.google.add_calendar(calendar)
        names = self.rng.sample(_JOBS, 3)
        for index, name in enumerate(names):
            coordinator = COORDINATORS[index % len(COORDINATORS)]
            job = self._create_job(name, coordinator, publish=index < 2)
            if index == 2:
                continue  # left unpublished: job_not_live once rules.job_live_within passes
            for stage in ("Application Review", "Application Review", "Phone Screen", "Onsite"):
                app = self._apply(job, stage)
                if stage in SCHEDULING_STAGES:
                    self._schedule(app, days_ahead=1 + len(self.interviews))
        # Waiting since before taskplanner looked: ready to schedule on day one (go-live).
        self._apply(self.jobs[0], "Phone Screen")

    # ------------------------------------------------------------------ the timeline

    def changes(self) -> Iterator[Change]:
        """Scripted changes that show every category within a minute or two, then random churn."""
        yield from self._scripted()
        while True:
            yield self._random_change()

    def _scripted(self) -> Iterator[Change]:
        first_job, second_job = self.jobs[0], self.jobs[1]
        unpublished = self.jobs[2]
        reviewing = [a for a in self.applications if a.stage == "Application Review"]
        scheduled = [i for i in self.interviews if i.event_id]
        mover = reviewing[0]
        declined, room_declined, candidate_declined, cancelled = (
            scheduled[0], scheduled[1], scheduled[2], scheduled[3 % len(scheduled)]
        )
        state: dict[str, Interview] = {}
        capabilities = self.ats.capabilities
        provider = display_name(self.ats.provider)

        def past_interview() -> None:
            app = self._apply(second_job, "Onsite")
            state["past"] = self._schedule(app, days_ahead=0, hours_ago=2, with_event=False)

        yield Change(2, f"{mover.name} moves to Phone Screen ({mover.job.name})",
                     lambda: self._move(mover, "Phone Screen"))
        yield Change(3, f"{self._who(declined.interviewers[0])} declines an interview",
                     lambda: self._respond(declined, declined.interviewers[0], "declined"))
        yield Change(3, "a new job is created (and not published yet)",
                     lambda: self._create_job(self._new_job_name(), COORDINATORS[1],
                                              publish=False))
        yield Change(2, "an onsite took place two hours ago; no scorecards yet", past_interview)
        yield Change(3, f"{mover.name}'s phone screen is scheduled",
                     lambda: self._schedule_once(mover))
        yield Change(3, "a room declines an interview",
                     lambda: self._respond(room_declined, room_declined.room or "", "declined"))
        yield Change(3, f"{candidate_declined.application.name} declines their interview",
                     lambda: self._respond(candidate_declined,
                                           candidate_declined.application.email, "declined"))
        yield Change(3, f"the interview with {cancelled.application.name} is cancelled",
                     lambda: self._cancel(cancelled))
        yield Change(4, "the interviewer who declined is replaced",
                     lambda: self._replace_interviewer(declined, declined.interviewers[0]))
        if PER_JOB_STAGES in capabilities:
            yield Change(3, f"a stage is added to {second_job.name}",
                         lambda: self._add_stage(second_job, "Take-home Exercise"))
        yield Change(3, "one interviewer submits the scorecard of the past onsite",
                     lambda: self._submit_scorecard(state["past"], 0))
        yield Change(3, "the room accepts again",
                     lambda: self._respond(room_declined, room_declined.room or "", "accepted"))
        yield Change(4, f"{cancelled.application.name} is rescheduled",
                     lambda: self._schedule_once(cancelled.application))
        if JOB_PUBLISHING in capabilities:
            yield Change(3, f"{unpublished.name} is published",
                         lambda: self._publish(unpublished))
        yield Change(3, f"{candidate_declined.application.name} accepts after all",
                     lambda: self._respond(candidate_declined,
                                           candidate_declined.application.email, "accepted"))
        yield Change(4, f"an interview is added to {first_job.name}'s Onsite",
                     lambda: self._add_interview_kind(first_job, "Onsite", "Culture Add"))
        yield Change(5, "the other interviewer submits the scorecard",
                     lambda: self._submit_scorecard(state["past"], 1))
        yield Change(20, f"{provider} rejects taskplanner's credentials (revoked by an admin)",
                     self.ats.revoke_credentials)
        yield Change(20, f"{provider} accepts the credentials again",
                     self.ats.restore_credentials)

    def _random_change(self) -> Change:
        """One change picked at random (seeded) among what can happen to this organisation."""
        if self._followups and self.rng.random() < 0.5:
            return self._followups.pop(0)
        active = [a for a in self.applications if a.status == "active"]
        waiting = [a for a in active if a.stage in SCHEDULING_STAGES and not self._upcoming(a)]
        upcoming = [i for i in self.interviews if not i.cancelled and i.event_id
                    and i.starts_at > self.clock()]
        options: list[tuple[int, Callable[[], Change | None]]] = [
            (3, lambda: self._change_new_candidate()),
            (4, lambda: self._change_advance(active)),
            (4, lambda: self._change_schedule(waiting)),
            (2, lambda: self._change_decline(upcoming)),
            (2, lambda: self._change_reject(active)),
            (1, lambda: self._change_new_job()),
        ]
        weights = [w for w, _ in options]
        while True:
            _, make = self.rng.choices(options, weights=weights)[0]
            change = make()
            if change is not None:
                return change

    def _change_new_candidate(self) -> Change:
        job = self.rng.choice(self.jobs)
        return Change(6, f"a new candidate applies to {job.name}",
                      lambda: self._apply(job, "Application Review"))

    def _change_advance(self, active: list[Application]) -> Change | None:
        movable = [a for a in active if a.stage != "Offer"]
        if not movable:
            return None
        app = self.rng.choice(movable)
        stages = [s for s in ("Application Review", *SCHEDULING_STAGES, "Offer")]
        target = stages[min(stages.index(app.stage) + 1, len(stages) - 1)]
        return Change(6, f"{app.name} moves to {target} ({app.job.name})",
                      lambda: self._move(app, target))

    def _change_schedule(self, waiting: list[Application]) -> Change | None:
        if not waiting:
            return None
        app = self.rng.choice(waiting)
        return Change(6, f"{app.name}'s {app.stage} is scheduled",
                      lambda: self._schedule_once(app))

    def _change_decline(self, upcoming: list[Interview]) -> Change | None:
        if not upcoming:
            return None
        interview = self.rng.choice(upcoming)
        email = self.rng.choice(interview.interviewers)
        return Change(6, f"{self._who(email)} declines an interview with "
                      f"{interview.application.name}",
                      lambda: self._decline_then_replace(interview, email))

    def _change_reject(self, active: list[Application]) -> Change | None:
        if len(active) < 6:
            return None
        app = self.rng.choice(active)
        return Change(6, f"{app.name} is rejected ({app.job.name})", lambda: self._reject(app))

    def _change_new_job(self) -> Change | None:
        if len(self.jobs) >= len(_JOBS):
            return None
        coordinator = self.rng.choice(COORDINATORS)
        return Change(6, "a new job is opened and published",
                      lambda: self._create_job(self._new_job_name(), coordinator, publish=True))

    # ------------------------------------------------------------------ actions on the fakes

    def _create_job(self, name: str, coordinator: str, *, publish: bool) -> Job:
        # An ATS whose jobs name no coordinator (Lever) leaves it to the recruiter.
        named = HIRING_TEAM_COORDINATOR in self.ats.capabilities
        job_id = self.ats.create_job(
            name,
            recruiter_id=self.users[f"rick@{DOMAIN}"],
            coordinator_id=self.users[coordinator] if named else None,
        )
        if publish and JOB_PUBLISHING in self.ats.capabilities:
            self.ats.publish_job(job_id)
        job = Job(job_id, name, coordinator)
        self.jobs.append(job)
        return job

    def _new_job_name(self) -> str:
        used = {j.name for j in self.jobs}
        free = [n for n in _JOBS if n not in used]
        return free[0] if free else f"{_JOBS[0]} {len(self.jobs) + 1}"

    def _publish(self, job: Job) -> None:
        self.ats.publish_job(job.id)

    def _apply(self, job: Job, stage: str) -> Application:
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        self._candidates += 1
        email = f"{first}.{last}.{self._candidates}@example.com".lower()
        _, application_id = self.ats.add_candidate_application(
            job.id, first, last, email, stage_id=self.ats.stage_id(job.id, stage)
        )
        app = Application(application_id, job, f"{first} {last}", email, stage)
        self.applications.append(app)
        return app

    def _move(self, app: Application, stage: str) -> None:
        if app.status != "active":
            return
        if stage == app.stage:
            return
        self.ats.move_application(app.id, self.ats.stage_id(app.job.id, stage))
        app.stage = stage

    def _reject(self, app: Application) -> None:
        self.ats.reject_application(app.id)
        app.status = "rejected"
        for interview in self.interviews:
            if interview.application is app and not interview.cancelled:
                self._cancel(interview)

    def _upcoming(self, app: Application) -> bool:
        now = self.clock()
        return any(
            i.application is app and not i.cancelled and i.starts_at > now
            for i in self.interviews
        )

    def _schedule_once(self, app: Application) -> None:
        if app.status == "active" and not self._upcoming(app):
            self._schedule(app, days_ahead=1 + self.rng.randrange(5))

    def _schedule(
        self,
        app: Application,
        *,
        days_ahead: int,
        hours_ago: int = 0,
        with_event: bool = True,
    ) -> Interview:
        """An interview in the ATS and, for future ones, its event on the coordinator's calendar."""
        now = self.clock().replace(minute=0, second=0, microsecond=0)
        starts = now + timedelta(days=days_ahead, hours=10) if days_ahead else now
        if hours_ago:
            starts = now - timedelta(hours=hours_ago)
        ends = starts + timedelta(hours=1)
        panel = self.rng.sample(INTERVIEWERS, 2)
        room, room_name = ROOMS[len(self.interviews) % len(ROOMS)]
        event_id: str | None = None
        calendar = app.job.coordinator
        if with_event:
            self._events += 1
            event_id = f"tp{self._events:06d}"
            attendees = [
                Attendee(calendar, "accepted", organizer=True, name=self._who(calendar)),
                *(Attendee(email, "accepted", name=self._who(email)) for email in panel),
                Attendee(app.email, "accepted", name=app.name),
                Attendee(room, "accepted", resource=True, name=room_name),
            ]
            self.google.add_event(
                calendar,
                event_id=event_id,
                start=starts,
                end=ends,
                summary=f"{app.stage}: {app.name} ({app.job.name})",
                attendees=attendees,
                organizer=calendar,
            )
        interview_id = self.ats.schedule_interview(
            app.id,
            self.ats.interview_kind_id(app.job.id, app.stage),
            [self.users[email] for email in panel],
            starts,
            ends,
            external_event_id=event_id,
            organizer_id=self.users[calendar],
        )
        interview = Interview(interview_id, app, event_id, calendar, panel,
                              room if with_event else None, starts)
        self.interviews.append(interview)
        app.interviews.append(interview_id)
        return interview

    def _respond(self, interview: Interview, email: str, response: str) -> None:
        if interview.event_id and not interview.cancelled:
            self.google.set_response(interview.calendar, interview.event_id, email, response)

    def _replace_interviewer(self, interview: Interview, leaving: str) -> None:
        if interview.cancelled or leaving not in interview.interviewers:
            return
        spare = [e for e in INTERVIEWERS if e not in interview.interviewers]
        joining = spare[0] if spare else leaving
        # An ATS that keeps no panel of its own (the calendar is the panel) skips this part.
        with contextlib.suppress(NotSupportedByProvider):
            self.ats.remove_interviewer(interview.id, self.users[leaving])
            self.ats.add_interviewer(interview.id, self.users[joining])
        interview.interviewers = [e for e in interview.interviewers if e != leaving] + [joining]
        if interview.event_id:
            self.google.remove_attendee(interview.calendar, interview.event_id, leaving)
            self.google.add_attendee(
                interview.calendar,
                interview.event_id,
                Attendee(joining, "accepted", name=self._who(joining)),
            )

    def _decline_then_replace(self, interview: Interview, email: str) -> None:
        self._respond(interview, email, "declined")
        self._followups.append(
            Change(6, f"{self._who(email)} is replaced on the interview with "
                   f"{interview.application.name}",
                   lambda: self._replace_interviewer(interview, email))
        )

    def _cancel(self, interview: Interview) -> None:
        if interview.cancelled:
            return
        interview.cancelled = True
        with contextlib.suppress(FakeATSError):  # already gone with its application
            self.ats.cancel_interview(interview.id)
        if interview.event_id:
            self.google.delete_event(interview.calendar, interview.event_id)

    def _submit_scorecard(self, interview: Interview, which: int) -> None:
        if which < len(interview.interviewers):
            self.ats.submit_scorecard(interview.id, self.users[interview.interviewers[which]])

    def _add_stage(self, job: Job, name: str) -> None:
        self.ats.add_stage(job.id, name, ("Take-home Review",))

    def _add_interview_kind(self, job: Job, stage: str, name: str) -> None:
        self.ats.add_interview_kind(self.ats.stage_id(job.id, stage), name)

    def _who(self, email: str) -> str:
        for person in PEOPLE:
            if person.email == email:
                return person.name
        return email
