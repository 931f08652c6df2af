"""Who owns what (SPEC §3): the ownership order, the roles' rules and hand-overs.

Pure functions over plain values. The engine gathers the facts of one task (what the
set-up page, the configuration and the ATS say about its job, stage and candidate) and
what is known of people (roles, who left, who is away); `assign` walks the ownership order
and answers who gets the task, through which rung, and for whom a stand-in holds it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from taskplanner.domain.categories import Role

MANUAL = "manual"
# Seeds (000_*): only a recruiter/admin (and the coordinators who work for them) can be a job
# coordinator; "an SO can be any recruiter, admin, or hiring manager", never a plain interviewer.
JC_ROLES = frozenset({"coordinator", "recruiter", "admin"})
SO_ROLES = JC_ROLES | {"hiring_manager"}


class Source(enum.StrEnum):
    """Where an owner comes from (the ``source`` of ``GET /api/jobs/{id}``)."""

    CONFIG = "config"  # [[jobs]] in the configuration file
    PAGE = "page"  # the set-up page or PUT /api/jobs/...
    ATS = "ats"  # the ATS's hiring team or candidate record
    DEFAULT = "default"  # nobody named: a stage's owner is the JC, a job's the account owner


class Post(enum.StrEnum):
    """What a rung of the order makes someone; it decides who may hold it."""

    JOB_COORDINATOR = "job coordinator"
    STAGE_OWNER = "stage owner"
    CANDIDATE_COORDINATOR = "candidate coordinator"
    ACCOUNT_OWNER = "account owner"


ELIGIBLE_ROLES: Mapping[Post, frozenset[str]] = {
    Post.JOB_COORDINATOR: JC_ROLES,
    Post.STAGE_OWNER: SO_ROLES,
    # The candidate's coordinator coordinates: the ATS copies the job's coordinator there.
    Post.CANDIDATE_COORDINATOR: JC_ROLES,
}


ROLES = ("coordinator", "recruiter", "admin", "hiring_manager", "interviewer")


def role_text(role: str) -> str:
    """ "a recruiter", "an admin", "a hiring manager"."""
    words = role.replace("_", " ")
    return ("an " if words[:1] in "aeiou" else "a ") + words


def allowed_roles_text(post: Post) -> str:
    """ "a coordinator, a recruiter or an admin" for a job coordinator."""
    allowed = ELIGIBLE_ROLES.get(post, frozenset())
    texts = [role_text(r) for r in ROLES if r in allowed]
    return ", ".join(texts[:-1]) + f" or {texts[-1]}" if len(texts) > 1 else "".join(texts)


def may_hold(post: Post, role: str | None) -> bool:
    """Whether someone with ``role`` may hold ``post`` (an unknown role may)."""
    allowed = ELIGIBLE_ROLES.get(post)
    return role is None or allowed is None or role in allowed


# --- the organisation's rules ---------------------------------------------------------------


@dataclass(frozen=True)
class JobOverrideRules:
    coordinator: str | None = None
    stage_owners: Mapping[str, str] = field(default_factory=dict)  # stage name -> email
    inactivity_after: Mapping[str, timedelta] = field(default_factory=dict)

    def stage_owner(self, stage_name: str | None) -> str | None:
        if not stage_name:
            return None
        for name, owner in self.stage_owners.items():
            if _fold(name) == _fold(stage_name):
                return owner.lower()
        return None


@dataclass(frozen=True)
class Absence:
    """Someone is away: while it holds, their tasks go to ``stand_in``.

    Without a stand-in (an out-of-office event of someone who named none) their tasks go to
    the next person in the ownership order. ``until`` None: for good (they left).
    """

    person: str
    stand_in: str | None
    origin: str  # "config" ([[people]]), "reassign" (the CLI) or "out_of_office" (a calendar)
    until: datetime | None = None
    since: datetime | None = None

    def holds(self, now: datetime) -> bool:
        started = self.since is None or self.since <= now
        return started and (self.until is None or now < self.until)

    def describe(self) -> str:
        """In the words of a task's history: "hand-over from cora@… until 2027-01-04 …"."""
        until = (
            f"until {self.until.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC"
            if self.until
            else "for good"
        )
        if self.origin == "out_of_office":
            return f"{self.person} is out of office {until}"
        return f"hand-over from {self.person} {until}"


@dataclass(frozen=True)
class OrgRules:
    """The organisation's rules, taken from the configuration (no I/O)."""

    account_owner: str
    scheduling_stages: frozenset[str] = frozenset()
    inactivity_stages: frozenset[str] = frozenset()
    evaluation_due_after: timedelta = timedelta(hours=24)
    job_live_within: timedelta = timedelta(hours=24)
    inactivity_after: timedelta = timedelta(days=15)
    schedule_within: timedelta = timedelta(days=2)
    people_roles: Mapping[str, str] = field(default_factory=dict)  # email -> role
    jobs: Mapping[str, JobOverrideRules] = field(default_factory=dict)  # ATS job id ->
    # [[people]] handover_to / away_until (person -> Absence with origin "config")
    handovers: Mapping[str, Absence] = field(default_factory=dict)
    follow_out_of_office: bool = False

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
        return may_hold(Post.JOB_COORDINATOR, self.people_roles.get(email.lower()))

    def stand_in_named_by(self, email: str) -> str | None:
        """The ``handover_to`` a person names in [[people]], whether or not it holds now."""
        absence = self.handovers.get(email.lower())
        return absence.stand_in if absence else None


def _fold(name: str) -> str:
    return " ".join(name.split()).casefold()


# --- the ownership order ----------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One person named for a post, and by whom."""

    email: str
    source: Source


@dataclass(frozen=True)
class OwnerFacts:
    """What the set-up page, the configuration and the ATS say about one task's owners."""

    account_owner: str
    job_coordinator_set: Choice | None = None  # on the set-up page or in the configuration
    stage_owner_set: Choice | None = None  # for the stage the task is about (see the engine)
    job_ats_coordinator: str | None = None  # the ATS hiring team's coordinator
    job_ats_recruiter: str | None = None  # the ATS hiring team's recruiter
    candidate_ats_coordinator: str | None = None  # the coordinator the ATS gives the candidate

    def emails(self) -> set[str]:
        named = (
            self.job_coordinator_set.email if self.job_coordinator_set else None,
            self.stage_owner_set.email if self.stage_owner_set else None,
            self.job_ats_coordinator,
            self.job_ats_recruiter,
            self.candidate_ats_coordinator,
            self.account_owner,
        )
        return {e.lower() for e in named if e}

    @property
    def candidate_coordinator_chosen(self) -> bool:
        """The ATS names a coordinator for the candidate other than the job's: someone chose
        that person for this candidate (else the ATS merely copied the job's)."""
        mine, jobs = self.candidate_ats_coordinator, self.job_ats_coordinator
        if not mine:
            return False
        return jobs is None or mine.lower() != jobs.lower()


@dataclass(frozen=True)
class Rung:
    email: str
    post: Post
    source: Source
    label: str  # how the README's table and a task's history name the rung


def ownership_order(role: Role, facts: OwnerFacts) -> list[Rung]:
    """Everyone who could get a task of ``role``, best first (the README's table).

    Coordinator for the candidate: (1) the stage owner set in taskplanner; (2) the candidate's
    ATS coordinator when it differs from the job's; (3) the job coordinator set in
    taskplanner; (4) the candidate's ATS coordinator, the job's ATS coordinator, its recruiter;
    (5) the account owner. An explicit choice in taskplanner beats a default the ATS copied.
    """
    rungs: list[Rung] = []

    def add(email: str | None, post: Post, source: Source, label: str) -> None:
        if email:
            rungs.append(Rung(email.lower(), post, source, label))

    so, jc = facts.stage_owner_set, facts.job_coordinator_set
    if role is Role.CANDIDATE_COORDINATOR and so is not None:
        add(so.email, Post.STAGE_OWNER, so.source, "stage owner set in taskplanner")
    if role is Role.STAGE_OWNER and so is not None:
        add(so.email, Post.STAGE_OWNER, so.source, "stage owner set in taskplanner")
    if role is Role.CANDIDATE_COORDINATOR and facts.candidate_coordinator_chosen:
        add(
            facts.candidate_ats_coordinator,
            Post.CANDIDATE_COORDINATOR,
            Source.ATS,
            "the candidate's coordinator in the ATS",
        )
    if role is not Role.ACCOUNT_OWNER and jc is not None:
        add(jc.email, Post.JOB_COORDINATOR, jc.source, "job coordinator set in taskplanner")
    if role is Role.CANDIDATE_COORDINATOR and not facts.candidate_coordinator_chosen:
        add(
            facts.candidate_ats_coordinator,
            Post.CANDIDATE_COORDINATOR,
            Source.ATS,
            "the candidate's coordinator in the ATS",
        )
    if role is not Role.ACCOUNT_OWNER:
        add(
            facts.job_ats_coordinator,
            Post.JOB_COORDINATOR,
            Source.ATS,
            "the job's coordinator in the ATS",
        )
        add(facts.job_ats_recruiter, Post.JOB_COORDINATOR, Source.ATS, "the job's recruiter")
    add(facts.account_owner, Post.ACCOUNT_OWNER, Source.DEFAULT, "the account owner")
    return rungs


# --- people -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleBreach:
    """Someone named for a post their role does not allow."""

    email: str
    post: Post
    role: str
    known_from: str  # "config" ([[people]]) or "ats"

    def describe(self) -> str:
        where = "[[people]]" if self.known_from == "config" else "the ATS"
        return (
            f"{self.email} is {role_text(self.role)} in {where}; a {self.post} must be "
            f"{allowed_roles_text(self.post)}"
        )


@dataclass(frozen=True)
class People:
    """What is known about people: roles, who left the ATS, who is away now."""

    config_roles: Mapping[str, str] = field(default_factory=dict)
    ats_roles: Mapping[str, str] = field(default_factory=dict)
    gone: frozenset[str] = frozenset()
    away: Mapping[str, Absence] = field(default_factory=dict)

    def role(self, email: str) -> tuple[str | None, str]:
        """A person's role and where it is known from; [[people]] wins over the ATS."""
        email = email.lower()
        if email in self.config_roles:
            return self.config_roles[email], "config"
        return self.ats_roles.get(email), "ats"

    def breach(self, email: str, post: Post) -> RoleBreach | None:
        role, known_from = self.role(email)
        if may_hold(post, role):
            return None
        assert role is not None  # noqa: S101 - may_hold allows an unknown role
        return RoleBreach(email.lower(), post, role, known_from)

    def covering(self, email: str) -> tuple[str | None, Absence | None]:
        """Who holds ``email``'s tasks now: themselves, a stand-in (followed through chains),
        or nobody (None: away without a stand-in who can take them) with the absence why."""
        email = email.lower()
        first: Absence | None = None
        seen: set[str] = set()
        current = email
        while current in self.away:
            absence = self.away[current]
            first = first or absence
            seen.add(current)
            stand_in = absence.stand_in.lower() if absence.stand_in else None
            if stand_in is None or stand_in in seen or stand_in in self.gone:
                return None, first
            current = stand_in
        return current, first


@dataclass(frozen=True)
class Assignment:
    """Who gets a task, through which rung, and whom a stand-in covers for."""

    assignee: str
    rung: Rung
    handed_over_from: str | None = None
    absence: Absence | None = None
    passed_over: tuple[RoleBreach, ...] = ()
    next_in_line: bool = False  # nobody stood in: the order went on past the absent person

    def why(self) -> str:
        """The reason a history entry gives for this assignee."""
        if self.handed_over_from and self.absence is not None:
            return self.absence.describe() + ("; next in line" if self.next_in_line else "")
        return self.rung.label


def assign(role: Role, facts: OwnerFacts, people: People) -> Assignment:
    """Walk the ownership order: skip who left, who may not hold the post, and who is away
    (their stand-in takes the task, else the next in the order). Never nobody: the account
    owner (or their stand-in) ends every order."""
    breaches: list[RoleBreach] = []
    away_from: str | None = None
    absence: Absence | None = None
    rungs = ownership_order(role, facts)
    for rung in rungs:
        last = rung.post is Post.ACCOUNT_OWNER
        if not last and rung.email in people.gone:
            continue
        if not last and (breach := people.breach(rung.email, rung.post)) is not None:
            breaches.append(breach)
            continue
        holder, why = people.covering(rung.email)
        if holder is None and not last:
            if away_from is None:
                away_from, absence = rung.email, why
            continue
        passed = away_from is not None
        if holder is None:  # nobody else is left: the account owner keeps it while away
            return Assignment(rung.email, rung, away_from, absence, tuple(breaches), passed)
        if holder != rung.email and away_from is None:
            away_from, absence = rung.email, why
        return Assignment(holder, rung, away_from, absence, tuple(breaches), passed)
    raise AssertionError("the ownership order always ends with the account owner")


def job_coordinator(facts: OwnerFacts, people: People) -> Choice:
    """The job's coordinator as the set-up page shows it (hand-overs aside)."""
    for rung in ownership_order(Role.JOB_COORDINATOR, facts):
        if rung.post is Post.ACCOUNT_OWNER:
            return Choice(rung.email, Source.DEFAULT)
        if rung.email not in people.gone and people.breach(rung.email, rung.post) is None:
            return Choice(rung.email, rung.source)
    return Choice(facts.account_owner.lower(), Source.DEFAULT)


def stage_owner(facts: OwnerFacts, people: People) -> Choice:
    """A stage's owner as the set-up page shows it: the one set in taskplanner, else the JC."""
    so = facts.stage_owner_set
    if (
        so is not None
        and so.email.lower() not in people.gone
        and people.breach(so.email, Post.STAGE_OWNER) is None
    ):
        return Choice(so.email.lower(), so.source)
    return Choice(job_coordinator(facts, people).email, Source.DEFAULT)


def handover_cycle(handovers: Mapping[str, str | None], start: str) -> list[str] | None:
    """The cycle a chain of hand-overs starting at ``start`` runs into, if any."""
    path = [start.lower()]
    current = start.lower()
    while (nxt := handovers.get(current)) is not None:
        nxt = nxt.lower()
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        current = nxt
    return None


def in_force(absences: Iterable[Absence], now: datetime) -> dict[str, Absence]:
    """The absences holding at ``now``, one per person: a hand-over recorded with
    ``taskplanner reassign`` beats the configuration's, which beats an out-of-office event."""
    rank = {"reassign": 0, "config": 1, "out_of_office": 2}
    out: dict[str, Absence] = {}
    for absence in sorted(absences, key=lambda a: rank.get(a.origin, 3)):
        if absence.holds(now) and absence.person not in out:
            out[absence.person] = absence
    return out
