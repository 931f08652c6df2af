"""The fake Lever keeps to Lever's documented Data API and webhook contract, so a connector that
passes against it meets the behaviour the real provider documents (raw HTTP here, no connector).

The webhook signature is checked with an HMAC computed here from the documentation's recipe
("Concatenate token and triggeredAt values ... HMAC ... SHA256 ... hexdigest"), not with the
fake's own helper.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from taskplanner.sandbox.fake_ats import (
    HIRING_TEAM_COORDINATOR,
    INTERVIEWER_RSVP,
    PER_JOB_STAGES,
    STAGE_REMOVAL,
    FakeATS,
    FakeATSError,
    NotSupportedByProvider,
    SignedDelivery,
)
from taskplanner.sandbox.fake_greenhouse import WebhookRecorder
from taskplanner.sandbox.fake_lever import LEVER_EXAMPLE_STAGES, FakeLever, WebhookDelivery

SIGNATURE_TOKEN = "lever-signature-token-for-tests"
UID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class Ticker:
    """A monotonic clock the test moves, so rate-limit tests do not depend on timing."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeLever]:
    with FakeLever(enforce_rate_limit=False, seed=7) as server:
        yield server


@pytest.fixture
def api(fake: FakeLever) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, auth=(fake.api_key, ""), timeout=5) as client:
        yield client


@pytest.fixture
def recorder() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as server:
        yield server


def people(fake: FakeLever) -> tuple[str, str, str]:
    recruiter = fake.add_user("rick@acme.example", "Rick", "Recruiter", role="recruiter")
    ivy = fake.add_user("ivy@acme.example", "Ivy", "Interviewer", role="interviewer")
    igor = fake.add_user("igor@acme.example", "Igor", "Interviewer", role="interviewer")
    return recruiter, ivy, igor


def walk(api: httpx.Client, path: str, **params: str | list[str]) -> list[dict[str, object]]:
    """Every record of a list endpoint, following ``next`` the documented way."""
    rows: list[dict[str, object]] = []
    query: dict[str, str | list[str]] = dict(params)
    while True:
        answer = api.get(path, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rows.extend(body["data"])
        if not body["hasNext"]:
            assert "next" not in body
            return rows
        query = {**params, "offset": body["next"]}


def received(recorder: WebhookRecorder) -> list[dict[str, object]]:
    return [json.loads(r.body) for r in recorder.received]


# ---------------------------------------------------------------- authentication


def test_basic_auth_takes_the_api_key_as_username_and_a_blank_password(fake: FakeLever) -> None:
    url = f"{fake.base_url}/users"
    assert httpx.get(url, auth=(fake.api_key, "")).status_code == 200
    for auth in ((fake.api_key, "password"), ("wrong-key", ""), ("", fake.api_key)):
        refused = httpx.get(url, auth=auth)
        assert refused.status_code == 401
        assert set(refused.json()) == {"code", "message"}
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {fake.api_key}"}).status_code == 401


def test_a_revoked_key_answers_401_until_it_is_restored(fake: FakeLever, api: httpx.Client
                                                        ) -> None:
    fake.revoke_credentials()
    assert api.get("/stages").status_code == 401
    fake.restore_credentials()
    assert api.get("/stages").status_code == 200


# ---------------------------------------------------------------- pagination and parameters


def test_pagination_walks_every_opportunity_once_even_while_records_are_added(
    fake: FakeLever, api: httpx.Client
) -> None:
    job = fake.create_job("Backend Engineer")
    first = [fake.add_candidate_application(job, "Ada", f"N{i}", f"ada{i}@x.example")[1]
             for i in range(25)]

    page = api.get("/opportunities", params={"limit": "10"}).json()
    assert len(page["data"]) == 10 and page["hasNext"] is True
    late = fake.add_candidate_application(job, "Late", "Comer", "late@x.example")[1]
    rest = walk(api, "/opportunities", limit="10")  # a fresh walk from the start

    seen = [str(row["id"]) for row in rest]
    assert sorted(seen) == sorted([*first, late]) and len(seen) == len(set(seen)) == 26
    continued = api.get("/opportunities", params={"limit": "10", "offset": page["next"]}).json()
    assert not {str(r["id"]) for r in continued["data"]} & {str(r["id"]) for r in page["data"]}


def test_limit_must_be_1_to_100_and_offsets_must_come_from_lever(
    fake: FakeLever, api: httpx.Client
) -> None:
    for limit in ("0", "101", "ten", ""):
        answer = api.get("/opportunities", params={"limit": limit})
        assert answer.status_code == 400, limit
        assert answer.json()["code"] and answer.json()["message"]
    assert api.get("/users", params={"limit": "100"}).status_code == 200
    forged = "0.1414895548650.a6070140-33db-407c-91f5-2760e15c8e94"
    assert api.get("/opportunities", params={"offset": forged}).status_code == 400


def test_an_offset_only_continues_the_request_it_came_from(
    fake: FakeLever, api: httpx.Client
) -> None:
    job = fake.create_job("Backend Engineer")
    stage = fake.stage_ids(job)[0]
    for i in range(3):
        fake.add_candidate_application(job, "Ada", f"N{i}", f"ada{i}@x.example")
    page = api.get("/opportunities", params={"limit": "1", "stage_id": stage}).json()
    token = page["next"]
    # A connector that drops its filters on the next page would silently read another list.
    assert api.get("/opportunities", params={"limit": "1", "offset": token}).status_code == 400
    assert api.get("/users", params={"offset": token}).status_code == 400
    same = api.get("/opportunities", params={"limit": "2", "stage_id": stage, "offset": token})
    assert same.status_code == 200 and len(same.json()["data"]) == 2


def test_unknown_repeated_and_comma_joined_parameters_are_refused(
    fake: FakeLever, api: httpx.Client
) -> None:
    job = fake.create_job("Backend Engineer")
    a, b = fake.stage_ids(job)[:2]
    refused = {
        "/opportunities": [{"updated_after": "1"}, {"per_page": "10"},
                           {"stage_id": f"{a},{b}"}, {"expand": "applications,stage"},
                           {"expand": "posting"}, {"include": "nonsense"},
                           {"archived": "yes"}, {"updated_at_start": "2024-01-01"},
                           {"email": ["a@x.example", "b@x.example"]},
                           {"confidentiality": "secret"}],
        "/users": [{"role": "admin"}, {"includeDeactivated": "1"}],
        "/stages": [{"expand": "stage"}, {"text": "Offer"}],
        "/postings": [{"state": "open"}, {"group": "team"}],
        "/archive_reasons": [{"type": "rejected"}],
    }
    for path, cases in refused.items():
        for params in cases:
            answer = api.get(path, params=params)
            assert answer.status_code == 400, (path, params)
            assert answer.json()["code"] == "BadRequest"
    both = api.get("/opportunities", params={"stage_id": [a, b], "expand": ["stage", "owner"]})
    assert both.status_code == 200
    # Free text may hold a comma: a location is one value, not two.
    new_york = fake.create_job("Sales Lead", location="New York, NY")
    located = api.get("/postings", params={"location": "New York, NY"}).json()["data"]
    assert [p["id"] for p in located] == [new_york]


def test_timestamp_windows_are_inclusive_milliseconds(fake: FakeLever, api: httpx.Client) -> None:
    job = fake.create_job("Backend Engineer")
    first = fake.add_candidate_application(job, "Ada", "One", "one@x.example")[1]
    second = fake.add_candidate_application(job, "Ada", "Two", "two@x.example")[1]
    third = fake.add_candidate_application(job, "Ada", "Three", "three@x.example")[1]
    stamps = {o: fake.record("opportunities", o)["updatedAt"] for o in (first, second, third)}

    window = walk(api, "/opportunities", updated_at_start=str(stamps[second]),
                  updated_at_end=str(stamps[second]))
    since = walk(api, "/opportunities", updated_at_start=str(stamps[second]))
    until = walk(api, "/opportunities", created_at_end=str(stamps[second]))

    assert [r["id"] for r in window] == [second]
    assert [r["id"] for r in since] == [second, third]
    assert [r["id"] for r in until] == [first, second]
    fake.move_application(first, fake.stage_ids(job)[1])
    assert [r["id"] for r in walk(api, "/opportunities",
                                  updated_at_start=str(stamps[third] + 1))] == [first]


def test_opportunity_filters_take_repeated_values_as_a_union(
    fake: FakeLever, api: httpx.Client
) -> None:
    recruiter, _, _ = people(fake)
    backend = fake.create_job("Backend Engineer", recruiter_id=recruiter)
    design = fake.create_job("Product Designer")
    review, screen, technical = fake.stage_ids(backend)[:3]
    in_review = fake.add_candidate_application(backend, "A", "A", "a@x.example")[1]
    screened = fake.add_candidate_application(backend, "B", "B", "b@x.example",
                                              stage_id=screen)[1]
    contact, designer = fake.add_candidate_application(design, "C", "C", "c@x.example",
                                                       stage_id=technical)
    fake.reject_application(screened, reason="Timing")

    def ids(**params: str | list[str]) -> set[object]:
        return {row["id"] for row in walk(api, "/opportunities", **params)}

    assert ids(stage_id=[review, technical]) == {in_review, designer}
    assert ids(posting_id=backend) == {in_review, screened}
    assert ids(posting_id=[backend, design]) == {in_review, screened, designer}
    assert ids(archived="true") == {screened} == ids(archived_posting_id=backend)
    assert ids(archived="false") == {in_review, designer}
    assert ids(archive_reason_id=fake.archive_reason_id("Timing")) == {screened}
    assert ids(archive_reason_id=fake.archive_reason_id("Withdrew")) == set()
    assert ids(contact_id=contact) == {designer}
    assert ids(email="B@X.example") == {screened}


def test_expand_turns_ids_into_objects_and_include_narrows_the_fields(
    fake: FakeLever, api: httpx.Client
) -> None:
    recruiter, _, _ = people(fake)
    job = fake.create_job("Backend Engineer", recruiter_id=recruiter)
    opportunity = fake.add_candidate_application(job, "Ada", "Lovelace", "ada@x.example")[1]

    plain = api.get(f"/opportunities/{opportunity}").json()["data"]
    assert plain["owner"] == recruiter and plain["followers"] == [recruiter]
    assert len(plain["applications"]) == 1 and isinstance(plain["applications"][0], str)
    assert plain["archived"] is None and plain["stageChanges"][0]["toStageIndex"] == 0

    expanded = api.get(f"/opportunities/{opportunity}",
                       params={"expand": ["applications", "stage", "owner"]}).json()["data"]
    (application,) = expanded["applications"]
    assert application["posting"] == job and application["opportunityId"] == opportunity
    assert expanded["stage"] == {"id": plain["stage"], "text": "Application Review"}
    assert expanded["owner"]["email"] == "rick@acme.example"

    narrow = api.get("/opportunities", params={"include": "stage", "expand": "owner"}).json()
    assert set(narrow["data"][0]) == {"id", "stage", "owner"}


def test_posting_updated_at_filters_combine_only_with_confidentiality(
    fake: FakeLever, api: httpx.Client
) -> None:
    old = fake.create_job("Old Job")
    since = int(fake.record("postings", old)["updatedAt"]) + 1
    new = fake.create_job("New Job")
    fake.rename_job(old, "Old Job (renamed)")

    allowed = walk(api, "/postings", updated_at_start=str(since), confidentiality="all")
    assert {row["id"] for row in allowed} == {old, new}
    for extra in ({"state": "internal"}, {"team": "Engineering"}, {"expand": "owner"}):
        answer = api.get("/postings", params={"updated_at_start": str(since), **extra})
        assert answer.status_code == 400, extra


def test_published_postings_default_to_the_public_job_site(
    fake: FakeLever, api: httpx.Client
) -> None:
    public = fake.create_job("Public")
    fake.publish_job(public)
    internal_only = fake.create_job("Internal site only")
    fake.publish_job(internal_only, channels=("internal",))

    def ids(**params: str | list[str]) -> set[object]:
        return {row["id"] for row in walk(api, "/postings", **params)}

    assert ids(state="published") == {public}
    assert ids(state="published", distributionChannel=["public", "internal"]) == {
        public, internal_only}
    assert ids() == {public, internal_only}


def test_confidential_records_need_asking_for_and_a_key_with_access() -> None:
    with FakeLever(enforce_rate_limit=False) as fake, httpx.Client(
        base_url=fake.base_url, auth=(fake.api_key, "")
    ) as api:
        secret_job = fake.create_job("Secret Project", confidential=True)
        open_job = fake.create_job("Open Role")
        hidden = fake.add_candidate_application(secret_job, "Ann", "S", "ann@x.example")[1]
        shown = fake.add_candidate_application(open_job, "Bob", "O", "bob@x.example")[1]

        assert [r["id"] for r in walk(api, "/opportunities")] == [shown]
        assert [r["id"] for r in walk(api, "/opportunities", confidentiality="all")] == [
            hidden, shown]
        assert [r["id"] for r in walk(api, "/postings")] == [open_job]

        fake.confidential_access = False
        assert api.get("/postings", params={"confidentiality": "all"}).status_code == 403
        assert api.get(f"/opportunities/{hidden}").status_code == 403


def test_missing_records_answer_the_documented_error_body(
    fake: FakeLever, api: httpx.Client
) -> None:
    missing = "a80bbbe0-d4dd-4eac-bdbf-302345414f93"
    answer = api.get(f"/stages/{missing}")
    assert answer.status_code == 404
    assert answer.json() == {"code": "ResourceNotFound",
                             "message": f"stages {missing} was not found"}
    assert api.get(f"/opportunities/{missing}/interviews").status_code == 404
    assert api.get("/candidates").status_code == 404  # deprecated, not modelled
    assert api.post("/opportunities").status_code == 404  # writes are not modelled
    assert httpx.get(f"http://{fake.host}:{fake.port}/opportunities",
                     auth=(fake.api_key, "")).status_code == 404  # outside /v1


# ---------------------------------------------------------------- resources


def test_users_carry_access_roles_and_deactivated_ones_are_hidden_by_default(
    fake: FakeLever, api: httpx.Client
) -> None:
    admin = fake.add_user("ada@acme.example", "Ada", "Admin", role="admin")
    coordinator = fake.add_user("cora@acme.example", "Cora", "Coordinator", role="coordinator")
    leaver = fake.add_user("leo@acme.example", "Leo", "Leaver", role="interviewer")
    fake.deactivate_user(leaver)

    active = {row["id"]: row for row in walk(api, "/users")}
    assert set(active) == {admin, coordinator}
    assert active[admin]["accessRole"] == "super admin"
    assert active[coordinator]["accessRole"] == "team member"
    assert active[admin]["username"] == "ada" and active[admin]["deactivatedAt"] is None
    everyone = walk(api, "/users", includeDeactivated="true")
    assert {row["id"] for row in everyone} == {admin, coordinator, leaver}
    assert [u["id"] for u in walk(api, "/users", email="CORA@acme.example")] == [coordinator]
    bracketed = walk(api, "/users", **{"accessRole[]": ["super admin", "admin"]})
    assert [u["id"] for u in bracketed] == [admin]


def test_stages_are_account_wide_and_every_posting_has_all_of_them(
    fake: FakeLever, api: httpx.Client
) -> None:
    backend = fake.create_job("Backend Engineer")
    design = fake.create_job("Product Designer",
                             stages=(("Application Review", ()), ("Portfolio Review", ()),
                                     ("Offer", ())))
    take_home = fake.add_stage(backend, "Take-home Exercise", ["Take-home Review"])

    listed = [(s["id"], s["text"]) for s in walk(api, "/stages")]
    assert [text for _, text in listed] == [
        "Application Review", "Phone Screen", "Technical Interview", "Onsite",
        "Portfolio Review", "Take-home Exercise", "Offer",
    ]
    assert fake.stage_ids(backend) == fake.stage_ids(design) == [i for i, _ in listed]
    assert fake.stage_id(design, "Take-home Exercise") == take_home
    assert fake.add_stage(design, "Take-home Exercise") == take_home  # already there


def test_a_fresh_lever_account_can_start_with_its_documented_stages() -> None:
    with FakeLever(initial_stages=LEVER_EXAMPLE_STAGES, enforce_rate_limit=False) as fake:
        job = fake.create_job("Backend Engineer")
        names = [fake.record("stages", s)["text"] for s in fake.stage_ids(job)]
        assert names[:6] == list(LEVER_EXAMPLE_STAGES[:6])
        assert names[-1] == "Offer"  # the default plan's stages went in before it
        assert names.index("Application Review") < names.index("Onsite") < names.index("Offer")


def test_interview_kinds_are_feedback_templates_of_their_stage(
    fake: FakeLever, api: httpx.Client
) -> None:
    job = fake.create_job("Backend Engineer")
    onsite = fake.stage_id(job, "Onsite")
    panel = fake.interview_kind_id(job, "Onsite")
    manager = fake.interview_kind_id(job, "Onsite", "Hiring Manager Interview")
    extra = fake.add_interview_kind(onsite, "System Design")

    template = api.get(f"/feedback_templates/{manager}").json()["data"]
    assert template["text"] == "Hiring Manager Interview"
    assert template["stage"] == {"id": onsite, "text": "Onsite"}
    assert [f["type"] for f in template["fields"]] == ["score-system"]
    onsite_kinds = [t["id"] for t in walk(api, "/feedback_templates")
                    if (t["stage"] or {}).get("id") == onsite]
    assert onsite_kinds == [panel, manager, extra]


def test_jobs_map_onto_posting_states(fake: FakeLever, api: httpx.Client) -> None:
    job = fake.create_job("Backend Engineer")
    draft = fake.create_job("Draft Role", status="draft")

    def state(posting: str) -> object:
        return api.get(f"/postings/{posting}").json()["data"]["state"]

    assert (state(job), state(draft)) == ("internal", "draft")
    fake.publish_job(job)
    assert state(job) == "published"
    fake.unpublish_job(job)
    assert state(job) == "internal"
    fake.close_job(job)
    assert state(job) == "closed"
    assert "followers" not in api.get(f"/postings/{job}").json()["data"]
    assert "followers" in api.get(f"/postings/{job}", params={"include": "followers"}).json()[
        "data"]


def test_archiving_records_the_reason_and_hiring_uses_a_hired_reason(
    fake: FakeLever, api: httpx.Client
) -> None:
    job = fake.create_job("Backend Engineer")
    rejected = fake.add_candidate_application(job, "Rea", "Jected", "rea@x.example")[1]
    hired = fake.add_candidate_application(job, "Hi", "Red", "hi@x.example")[1]
    fake.reject_application(rejected)
    fake.hire(hired)

    (hired_reason,) = walk(api, "/archive_reasons", type="hired")
    rejection = api.get(f"/opportunities/{rejected}", params={"expand": "applications"}).json()
    archived = rejection["data"]["archived"]
    assert archived["reason"] == fake.archive_reason_id("Underqualified")
    assert rejection["data"]["applications"][0]["archived"] == archived
    assert api.get(f"/opportunities/{hired}").json()["data"]["archived"]["reason"] == hired_reason[
        "id"]

    fake.unreject_application(rejected)
    assert api.get(f"/opportunities/{rejected}").json()["data"]["archived"] is None


def test_one_person_applying_twice_keeps_one_contact(fake: FakeLever, api: httpx.Client) -> None:
    backend = fake.create_job("Backend Engineer")
    design = fake.create_job("Product Designer")
    contact, first = fake.add_candidate_application(backend, "Ada", "L", "ada@x.example")
    same, second = fake.add_candidate_application(design, "Ada", "L", "ADA@x.example")

    assert same == contact and first != second
    assert {r["id"] for r in walk(api, "/opportunities", contact_id=contact)} == {first, second}
    assert api.get(f"/contacts/{contact}").json()["data"]["emails"] == ["ada@x.example"]


def test_interviews_panels_and_feedback_point_at_each_other(
    fake: FakeLever, api: httpx.Client
) -> None:
    recruiter, ivy, igor = people(fake)
    job = fake.create_job("Backend Engineer", recruiter_id=recruiter)
    opportunity = fake.add_candidate_application(job, "Ada", "L", "ada@x.example",
                                                 stage_id=fake.stage_id(job, "Onsite"))[1]
    kind = fake.interview_kind_id(job, "Onsite")
    starts = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
    interview = fake.schedule_interview(opportunity, kind, [ivy, igor], starts,
                                        starts + timedelta(minutes=45), organizer_id=recruiter)
    feedback = fake.submit_scorecard(interview, ivy, rating="4 - Strong Hire")

    (listed,) = walk(api, f"/opportunities/{opportunity}/interviews")
    assert listed["id"] == interview and listed["date"] == 1_898_845_200_000
    assert listed["duration"] == 45 and listed["feedbackTemplate"] == kind
    assert [i["id"] for i in listed["interviewers"]] == [ivy, igor]
    assert listed["feedbackForms"] == [feedback] and listed["postings"] == [job]
    assert listed["stage"] == fake.stage_id(job, "Onsite") and listed["canceledAt"] is None

    (panel,) = walk(api, f"/opportunities/{opportunity}/panels")
    assert panel["id"] == listed["panel"] and [i["id"] for i in panel["interviews"]] == [
        interview]
    assert panel["start"] == listed["date"] and panel["end"] == listed["date"] + 45 * 60_000

    (form,) = walk(api, f"/opportunities/{opportunity}/feedback")
    assert (form["interview"], form["panel"], form["user"]) == (interview, panel["id"], ivy)
    assert form["completedAt"] is not None and form["deletedAt"] is None
    assert form["fields"][0]["value"] == "4 - Strong Hire"
    other = api.get(f"/opportunities/{opportunity}/interviews/{interview}",
                    params={"expand": "feedbackForms"}).json()["data"]
    assert other["feedbackForms"][0]["id"] == feedback

    fake.delete_scorecard(feedback)
    (form,) = walk(api, f"/opportunities/{opportunity}/feedback")
    assert form["deletedAt"] is not None
    fake.cancel_interview(interview)
    (panel,) = walk(api, f"/opportunities/{opportunity}/panels")
    assert panel["canceledAt"] is not None


def test_interview_changes_do_not_move_the_opportunity(fake: FakeLever) -> None:
    _, ivy, _ = people(fake)
    job = fake.create_job("Backend Engineer")
    opportunity = fake.add_candidate_application(job, "Ada", "L", "ada@x.example")[1]
    before = fake.record("opportunities", opportunity)["updatedAt"]
    starts = datetime.now(UTC) + timedelta(days=1)
    interview = fake.schedule_interview(opportunity, fake.interview_kind_id(job, "Onsite"),
                                        [ivy], starts, starts + timedelta(hours=1))
    fake.submit_scorecard(interview, ivy)
    # Not among the fields the docs list as moving updatedAt: webhooks or re-listing find them.
    assert fake.record("opportunities", opportunity)["updatedAt"] == before


def test_deleted_opportunities_move_to_the_deleted_list(fake: FakeLever, api: httpx.Client
                                                        ) -> None:
    recruiter, ivy, _ = people(fake)
    job = fake.create_job("Backend Engineer")
    contact, doomed = fake.add_candidate_application(job, "Del", "Eted", "del@x.example")
    kept = fake.add_candidate_application(job, "Kept", "One", "kept@x.example")[1]
    starts = datetime.now(UTC) + timedelta(days=1)
    fake.schedule_interview(doomed, fake.interview_kind_id(job, "Onsite"), [ivy], starts,
                            starts + timedelta(hours=1))
    fake.delete_application(doomed, deleted_by=recruiter)

    assert [r["id"] for r in walk(api, "/opportunities")] == [kept]
    assert api.get(f"/opportunities/{doomed}").status_code == 404
    assert api.get(f"/opportunities/{doomed}/interviews").status_code == 404
    (gone,) = walk(api, "/opportunities/deleted")
    assert (gone["id"], gone["deletedBy"], gone["contact"]) == (doomed, recruiter, contact)
    assert walk(api, "/opportunities/deleted", deleted_at_start=str(gone["deletedAt"] + 1)) == []


# ---------------------------------------------------------------- rate limit and faults


def test_the_documented_rate_limit_allows_a_burst_of_20_then_10_per_second() -> None:
    ticker = Ticker()
    with FakeLever(monotonic=ticker) as fake, httpx.Client(
        base_url=fake.base_url, auth=(fake.api_key, "")
    ) as api:
        burst = [api.get("/stages").status_code for _ in range(25)]
        assert burst == [200] * 20 + [429] * 5
        throttled = api.get("/stages")
        assert throttled.json()["code"] == "TooManyRequests"
        assert "Retry-After" not in throttled.headers  # none is documented: back off
        ticker.now += 0.5
        assert [api.get("/stages").status_code for _ in range(6)] == [200] * 5 + [429]
        ticker.now += 10
        assert [api.get("/stages").status_code for _ in range(21)] == [200] * 20 + [429]


def test_requests_per_second_shows_the_busiest_second_of_a_client() -> None:
    ticker = Ticker()
    with FakeLever(monotonic=ticker, enforce_rate_limit=False) as fake, httpx.Client(
        base_url=fake.base_url, auth=(fake.api_key, "")
    ) as api:
        for step in range(30):  # a well-behaved client: one request every 0.1 s
            ticker.now = 1000 + step * 0.1
            api.get("/stages")
        assert fake.max_requests_per_second() == 10
        ticker.now = 2000
        for _ in range(15):  # a burst within one instant
            api.get("/stages")
        assert fake.max_requests_per_second() == 15
        assert fake.requests_to("/stages") == 45
        fake.reset_counters()
        assert fake.max_requests_per_second() == 0


def test_injected_faults_answer_like_a_failing_lever(fake: FakeLever, api: httpx.Client) -> None:
    fake.fail_next(503, path="/stages")
    assert api.get("/users").status_code == 200  # the fault waits for its path
    unavailable = api.get("/stages")
    assert unavailable.status_code == 503 and unavailable.json()["code"] == "ServiceUnavailable"

    fake.throttle_next(retry_after=2)
    throttled = api.get("/stages")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"

    fake.truncate_next()
    truncated = api.get("/stages")
    assert truncated.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        truncated.json()

    fake.disconnect_next()
    with pytest.raises(httpx.TransportError):
        api.get("/stages")

    fake.slow_next(0.5)
    with pytest.raises(httpx.ReadTimeout):
        api.get("/stages", timeout=0.1)
    assert fake.pending_faults == 0
    assert api.get("/stages").status_code == 200


# ---------------------------------------------------------------- webhooks


def test_a_webhook_is_signed_over_token_and_triggered_at(
    fake: FakeLever, recorder: WebhookRecorder
) -> None:
    fake.configure_webhook(recorder.url, SIGNATURE_TOKEN)
    job = fake.create_job("Backend Engineer")
    before = int(time.time() * 1000)
    fake.add_candidate_application(job, "Ada", "L", "ada@x.example")

    (request,) = recorder.received
    assert request.headers["User-Agent"] == "Lever-Webhooks"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert set(body) == {"triggeredAt", "event", "data", "signature", "token"}
    assert body["event"] == "applicationCreated"
    assert len(body["token"]) == 48
    assert before <= body["triggeredAt"] <= int(time.time() * 1000)
    plain = (body["token"] + str(body["triggeredAt"])).encode()
    expected = hmac.new(SIGNATURE_TOKEN.encode(), plain, hashlib.sha256).hexdigest()
    assert body["signature"] == expected
    wrong_key = hmac.new(b"another token", plain, hashlib.sha256).hexdigest()
    assert body["signature"] != wrong_key


def test_each_change_sends_its_documented_event_with_ids_only(
    fake: FakeLever, recorder: WebhookRecorder
) -> None:
    recruiter, ivy, igor = people(fake)
    job = fake.create_job("Backend Engineer", recruiter_id=recruiter)
    fake.configure_webhook(recorder.url, SIGNATURE_TOKEN)
    contact, opportunity = fake.add_candidate_application(job, "Ada", "L", "ada@x.example")
    review, screen = fake.stage_ids(job)[:2]
    fake.move_application(opportunity, screen)
    starts = datetime.now(UTC) + timedelta(days=1)
    interview = fake.schedule_interview(opportunity, fake.interview_kind_id(job, "Phone Screen"),
                                        [ivy], starts, starts + timedelta(minutes=30))
    fake.add_interviewer(interview, igor)
    fake.reschedule_interview(interview, starts + timedelta(hours=2),
                              starts + timedelta(hours=3))
    fake.delete_interview(interview)
    fake.reject_application(opportunity)
    fake.unreject_application(opportunity)
    fake.hire(opportunity)
    fake.delete_application(opportunity)

    bodies = received(recorder)
    assert [b["event"] for b in bodies] == [
        "applicationCreated", "candidateStageChange", "interviewCreated", "interviewUpdated",
        "interviewUpdated", "interviewDeleted", "candidateArchiveChange",
        "candidateArchiveChange", "candidateArchiveChange", "candidateHired",
        "candidateDeleted",
    ]
    ids = {"opportunityId": opportunity, "candidateId": opportunity, "contactId": contact}
    for body in bodies:
        data = body["data"]
        assert isinstance(data, dict)
        assert {k: data[k] for k in ids} == ids
        for key, value in data.items():
            if key in ("fromArchived", "toArchived"):
                assert value is None or set(value) == {"archivedAt", "reason"}
            else:
                assert isinstance(value, str) and UID.match(value), (key, value)
    stage_change = bodies[1]["data"]
    assert isinstance(stage_change, dict)
    assert (stage_change["fromStageId"], stage_change["toStageId"]) == (review, screen)
    created = bodies[2]["data"]
    assert isinstance(created, dict)
    assert (created["interviewId"], created["panelId"]) == (interview, created["panelId"])


def test_a_redelivery_is_byte_for_byte_the_same(fake: FakeLever, recorder: WebhookRecorder
                                                ) -> None:
    fake.configure_webhook(recorder.url, SIGNATURE_TOKEN)
    delivery = fake.send_test_webhook()
    assert delivery is not None and delivery.payload["data"] == {}
    again = fake.redeliver(delivery)
    first, second = recorder.received
    assert first.body == second.body == delivery.body == again.body
    assert again.delivered and again.attempt == 2
    assert isinstance(delivery, SignedDelivery)


def test_a_stale_or_foreign_delivery_can_be_made_for_receiver_tests(
    fake: FakeLever, recorder: WebhookRecorder
) -> None:
    fake.configure_webhook(recorder.url, SIGNATURE_TOKEN)
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    stale = fake.send_webhook("candidateHired", {"opportunityId": "x"}, triggered_at=an_hour_ago)
    assert stale is not None and stale.payload["triggeredAt"] == an_hour_ago
    plain = (stale.token + str(an_hour_ago)).encode()
    assert stale.payload["signature"] == hmac.new(SIGNATURE_TOKEN.encode(), plain,
                                                  hashlib.sha256).hexdigest()
    fake.event_signature_tokens["candidateHired"] = "a token for this event only"
    other = fake.send_webhook("candidateHired", {})
    assert other is not None
    assert other.payload["signature"] != hmac.new(
        SIGNATURE_TOKEN.encode(), (other.token + str(other.triggered_at)).encode(),
        hashlib.sha256).hexdigest()


def test_events_outside_the_configured_ones_are_not_sent(recorder: WebhookRecorder) -> None:
    with FakeLever(webhook_url=recorder.url, webhook_secret=SIGNATURE_TOKEN,
                   webhook_events=["candidateStageChange", "contactCreated"]) as fake:
        job = fake.create_job("Backend Engineer")
        opportunity = fake.add_candidate_application(job, "Ada", "L", "ada@x.example")[1]
        fake.advance_application(opportunity)
        fake.reject_application(opportunity)
        assert [b["event"] for b in received(recorder)] == ["contactCreated",
                                                            "candidateStageChange"]


def test_async_webhooks_are_retried_until_the_receiver_accepts(recorder: WebhookRecorder
                                                               ) -> None:
    recorder.status = 500
    with FakeLever(webhook_url=recorder.url, webhook_secret=SIGNATURE_TOKEN,
                   async_webhooks=True, webhook_retry_delays=(0.05, 0.05, 0.05)) as fake:
        job = fake.create_job("Backend Engineer")
        fake.add_candidate_application(job, "Ada", "L", "ada@x.example")
        fake.flush_webhooks()
        deadline = time.monotonic() + 5
        while len(fake.webhook_deliveries) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        recorder.status = 200
        while not any(d.delivered for d in fake.webhook_deliveries) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        attempts = list(fake.webhook_deliveries)
    assert attempts[0].status_code == 500 and attempts[-1].delivered
    assert len({d.body for d in attempts}) == 1
    assert [d.attempt for d in attempts] == list(range(1, len(attempts) + 1))
    assert len(recorder.received) == len(attempts) <= 4


# ---------------------------------------------------------------- the FakeATS protocol


def test_fake_lever_is_a_fake_ats_without_what_lever_cannot_express(fake: FakeLever) -> None:
    assert isinstance(fake, FakeATS)
    assert fake.provider == "lever"
    for missing in (PER_JOB_STAGES, STAGE_REMOVAL, INTERVIEWER_RSVP, HIRING_TEAM_COORDINATOR):
        assert missing not in fake.capabilities
    recruiter, ivy, _ = people(fake)
    job = fake.create_job("Backend Engineer", recruiter_id=recruiter)
    opportunity = fake.add_candidate_application(job, "Ada", "L", "ada@x.example")[1]
    starts = datetime.now(UTC) + timedelta(days=1)
    interview = fake.schedule_interview(opportunity, fake.interview_kind_id(job, "Onsite"),
                                        [ivy], starts, starts + timedelta(hours=1))
    with pytest.raises(NotSupportedByProvider):
        fake.remove_stage(fake.stage_ids(job)[0])
    with pytest.raises(NotSupportedByProvider):
        fake.set_interviewer_response(interview, ivy, "declined")
    with pytest.raises(NotSupportedByProvider):
        fake.set_job_coordinator(job, recruiter)
    with pytest.raises(NotSupportedByProvider):
        fake.create_job("Another", coordinator_id=recruiter)


def test_the_protocol_vocabulary_drives_a_whole_candidacy(
    fake: FakeLever, api: httpx.Client
) -> None:
    ats: FakeATS[str] = fake
    coordinator = ats.add_user("cora@acme.example", "Cora", "Coordinator", role="coordinator")
    assert ats.user_id("cora@acme.example") == coordinator
    job = ats.create_job("Backend Engineer")
    contact, application = ats.add_candidate_application(
        job, "Ada", "L", "ada@x.example", coordinator_id=coordinator)
    assert ats.advance_application(application) == ats.stage_id(job, "Phone Screen")
    ats.move_application(application, ats.stage_id(job, "Offer"))
    with pytest.raises(FakeATSError, match="last stage"):
        ats.advance_application(application)
    ats.hire(application)

    record = api.get(f"/opportunities/{application}").json()["data"]
    assert record["owner"] == coordinator and record["contact"] == contact
    assert record["stage"] == ats.stage_id(job, "Offer")
    assert [c["toStageId"] for c in record["stageChanges"]] == [
        ats.stage_id(job, name) for name in ("Application Review", "Phone Screen", "Offer")]
    ats.delete_candidate(contact)
    assert walk(api, "/opportunities") == []


def test_deliveries_are_recorded_as_signed_deliveries(fake: FakeLever, recorder: WebhookRecorder
                                                      ) -> None:
    fake.configure_webhook(recorder.url, SIGNATURE_TOKEN)
    job = fake.create_job("Backend Engineer")
    fake.add_candidate_application(job, "Ada", "L", "ada@x.example")
    (delivery,) = fake.webhook_deliveries
    assert isinstance(delivery, WebhookDelivery) and isinstance(delivery, SignedDelivery)
    assert delivery.delivered and delivery.body == recorder.received[0].body
