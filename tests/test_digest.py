"""The daily digest against a real SMTP server (aiosmtpd on 127.0.0.1) with an injected clock:
who gets one, what it counts, when (organisation time, DST included), retries, TLS + login,
and ``taskplanner digest send [--dry-run]``."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from typer.testing import CliRunner

from taskplanner import digest
from taskplanner.cli import app as cli
from taskplanner.clock import FrozenClock
from taskplanner.runtime import Runtime
from taskplanner.store.database import transaction
from tests import factories as f
from tests.taskflow import complete_by_hand, open_tasks
from tests.webapp import SAM_STAGES, free_port, make_runtime, seed_two_coordinators

PAGE = "https://tasks.acme.example/"
SENDER = "taskplanner@acme.example"
DIGEST = {"send_at": "08:00", "from": SENDER, "page_url": PAGE}
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# --- a real SMTP server ------------------------------------------------------------------------


@dataclass
class Mailbox:
    """aiosmtpd handler: keeps what it accepts; can refuse the first few messages."""

    refuse_first: int = 0
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refused: int = 0
    tls: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refused < self.refuse_first:
            self.refused += 1
            return "451 4.3.0 Mailbox busy, try again later"
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))
        self.tls.append(session.ssl is not None)
        return "250 2.0.0 OK"

    def recipients(self) -> list[str]:
        return sorted(rcpt for rcpts, _ in self.received for rcpt in rcpts)

    def to(self, recipient: str) -> EmailMessage:
        [message] = [m for rcpts, m in self.received if recipient in rcpts]
        return message


@dataclass
class SmtpServer:
    mailbox: Mailbox
    url: str


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain SMTP server on loopback."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(mailbox, f"smtp://127.0.0.1:{port}")
    finally:
        controller.stop()


@pytest.fixture
def clock() -> FrozenClock:
    # Monday 2 March 2026, 06:30 UTC = 07:30 in Berlin (CET, UTC+1).
    return FrozenClock(datetime(2026, 3, 2, 6, 30, tzinfo=UTC))


@pytest.fixture
def runtime(db_url: str, clock: FrozenClock, smtp: SmtpServer) -> Iterator[Runtime]:
    runtime = make_runtime(db_url, clock, digest=DIGEST)
    assert runtime.config.digest is not None
    runtime.config.digest.set_secret("smtp_url", smtp.url)
    yield runtime
    runtime.close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content()).replace("\r\n", "\n")  # as sent: CRLF line ends


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def seed_people(runtime: Runtime) -> None:
    """Cora: 3 ready to schedule + her new job; Sam: 2 + his new job; Carl had one task and
    completed it; Ada (account owner) has none."""
    seed_two_coordinators(runtime, per_person=3)
    # Sam's third candidate moves on to the review stage: that task is no longer open.
    runtime.pipeline.ingest_now(
        [f.application("a102", job_id="j2", candidate_id="c102", stage="s2-review", updated=9)]
    )
    carl_job = f.job("j4", name="Support Lead", coordinator=f.CARL, stages=(f.stage("s4", "C", 0),))
    [carls] = runtime.pipeline.ingest_now([carl_job]).opened
    complete_by_hand(runtime.pipeline, carls.id, by=f.CARL)


def tick(runtime: Runtime, clock: FrozenClock, sleeps: list[float]) -> digest.DigestRun:
    return digest.send_due_digests(runtime, clock(), sleep=sleeps.append)


# --- who, what and when --------------------------------------------------------------------------


def test_each_person_with_open_tasks_gets_one_digest_at_eight_berlin_time(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    seed_people(runtime)

    clock.now = datetime(2026, 3, 2, 6, 59, tzinfo=UTC)  # 07:59 in Berlin
    assert tick(runtime, clock, sleeps).sent == []
    clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 08:00 in Berlin (08:00 UTC is later)
    run = tick(runtime, clock, sleeps)
    assert sorted(run.sent) == [f.CORA, f.SAM]
    assert smtp.mailbox.recipients() == [f.CORA, f.SAM]  # not Carl (all done), not Ada

    clock.advance(timedelta(minutes=30))
    assert tick(runtime, clock, sleeps).sent == []  # once per local day
    assert len(smtp.mailbox.received) == 2

    clock.now = datetime(2026, 3, 3, 6, 59, tzinfo=UTC)
    assert tick(runtime, clock, sleeps).sent == []
    clock.now = datetime(2026, 3, 3, 7, 1, tzinfo=UTC)
    assert sorted(tick(runtime, clock, sleeps).sent) == [f.CORA, f.SAM]
    assert len(smtp.mailbox.received) == 4
    assert sleeps == []


def test_the_digest_counts_per_category_and_links_to_the_page(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    seed_people(runtime)
    clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    tick(runtime, clock, sleeps)

    cora = smtp.mailbox.to(f.CORA)
    assert cora["From"] == SENDER
    assert cora["Subject"] == "Acme taskplanner: 4 open tasks"
    assert cora.get_content_type() == "multipart/alternative"
    text = text_of(cora)
    assert text.startswith("Hello Cora,")
    assert "You have 4 open tasks." in text
    assert "  Ready to schedule     3\n" in text
    assert "  New job               1\n" in text
    assert "Your task list: https://tasks.acme.example/?assignee=cora%40acme.example" in text
    assert "https://tasks.acme.example/jobs/j1/setup" in text  # relative links made absolute
    html = html_of(cora)
    assert 'href="https://tasks.acme.example/?assignee=cora%40acme.example"' in html
    assert "<strong>4</strong> open tasks" in html

    sam = text_of(smtp.mailbox.to(f.SAM))
    assert "You have 3 open tasks." in sam
    assert "  Ready to schedule     2\n" in sam


def test_overdue_tasks_come_first_and_the_oldest_after_them(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    runtime.pipeline.ingest_now([f.job("j1", name="Unpublished Role", published=False)])
    clock.advance(timedelta(days=2))
    runtime.pipeline.sweep_now()  # job_not_live, due 24 h after the job was created
    runtime.pipeline.ingest_now(
        [
            f.candidate("c1", name="Ada <Lovelace>"),
            f.application("a1"),
            f.candidate("c2", name="Bob"),
            f.application("a2", candidate_id="c2"),
        ]
    )
    clock.now = datetime(2026, 3, 4, 7, 5, tzinfo=UTC)
    tick(runtime, clock, sleeps)

    message = smtp.mailbox.to(f.CORA)
    assert message["Subject"] == "Acme taskplanner: 4 open tasks, 1 overdue"
    text = text_of(message)
    listed = [line for line in text.splitlines() if line.startswith("- ")]
    assert listed[0].startswith("- [OVERDUE by ")
    assert "Publish" in text.split(listed[0])[1].splitlines()[2]
    assert [line.removeprefix("- ") for line in listed[1:]] == [
        "Set up Unpublished Role for scheduling",  # the oldest
        "Schedule Ada <Lovelace> for Phone Screen (Unpublished Role)",
        "Schedule Bob for Phone Screen (Unpublished Role)",
    ]
    html = html_of(message)
    assert "Ada &lt;Lovelace&gt;" in html and "Ada <Lovelace>" not in html


@sqlite_only
def test_send_time_follows_daylight_saving_time(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    seed_people(runtime)
    clock.now = datetime(2026, 7, 1, 5, 59, tzinfo=UTC)  # 07:59 CEST
    assert tick(runtime, clock, sleeps).sent == []
    clock.now = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)  # 08:00 CEST (UTC+2)
    assert sorted(tick(runtime, clock, sleeps).sent) == [f.CORA, f.SAM]


@sqlite_only
def test_a_daemon_started_in_the_afternoon_sends_no_morning_digest(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    seed_people(runtime)
    clock.now = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 14:00 in Berlin: 6 h late
    assert tick(runtime, clock, sleeps).sent == []
    clock.now = datetime(2026, 3, 2, 12, 59, tzinfo=UTC)  # still within the window
    assert sorted(tick(runtime, clock, sleeps).sent) == [f.CORA, f.SAM]


@sqlite_only
def test_nobody_is_mailed_when_nothing_is_open(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    [task] = runtime.pipeline.ingest_now([f.job("j1")]).opened
    complete_by_hand(runtime.pipeline, task.id, by=f.CORA)
    clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    assert tick(runtime, clock, sleeps).sent == []
    assert smtp.mailbox.received == []


# --- failures ------------------------------------------------------------------------------------


@sqlite_only
def test_a_refused_send_is_retried_with_backoff(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    runtime.pipeline.ingest_now([f.job("j1")])
    smtp.mailbox.refuse_first = 2
    clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    run = tick(runtime, clock, sleeps)
    assert run.sent == [f.CORA]
    assert sleeps == [2.0, 4.0]
    assert smtp.mailbox.recipients() == [f.CORA]


@sqlite_only
def test_a_failed_digest_is_tried_again_on_the_next_tick(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    runtime.pipeline.ingest_now([f.job("j1")])
    smtp.mailbox.refuse_first = 3  # every attempt of the first tick
    clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    run = tick(runtime, clock, sleeps)
    assert (run.sent, run.failed) == ([], [f.CORA])
    clock.advance(timedelta(minutes=1))
    assert tick(runtime, clock, sleeps).sent == [f.CORA]
    clock.advance(timedelta(minutes=1))
    assert tick(runtime, clock, sleeps).sent == []
    assert smtp.mailbox.recipients() == [f.CORA]


@sqlite_only
def test_an_unreachable_server_fails_without_raising(
    runtime: Runtime, clock: FrozenClock, sleeps: list[float]
) -> None:
    runtime.pipeline.ingest_now([f.job("j1")])
    assert runtime.config.digest is not None
    runtime.config.digest.set_secret("smtp_url", f"smtp://127.0.0.1:{free_port()}")
    clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    run = tick(runtime, clock, sleeps)
    assert run.failed == [f.CORA]
    assert len(sleeps) == digest.SEND_ATTEMPTS - 1


# --- TLS and login --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it via SSL_CERT_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _login_checker(logins: list[str]) -> Any:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"digest",
            b"p@ss:w/rd",
        )
        if ok:
            logins.append(data.login.decode())
        return AuthResult(success=ok)

    return authenticate


@sqlite_only
@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
def test_tls_and_login_from_the_url(
    runtime: Runtime,
    clock: FrozenClock,
    sleeps: list[float],
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
) -> None:
    cert_file, key_file = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    mailbox, logins = Mailbox(), []
    port = free_port()
    options: dict[str, Any] = {"authenticator": _login_checker(logins)}
    if scheme == "smtp":  # STARTTLS offered and required by the server
        options |= {"tls_context": context, "require_starttls": True}
    else:  # implicit TLS (aiosmtpd only counts STARTTLS as TLS for its AUTH rule)
        options |= {"ssl_context": context, "auth_require_tls": False}
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        assert runtime.config.digest is not None
        runtime.config.digest.set_secret(
            "smtp_url", f"{scheme}://digest:p%40ss%3Aw%2Frd@127.0.0.1:{port}"
        )
        runtime.pipeline.ingest_now([f.job("j1")])
        clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
        assert tick(runtime, clock, sleeps).sent == [f.CORA]
    finally:
        controller.stop()
    assert logins == ["digest"]
    assert len(mailbox.received) == 1
    if scheme == "smtp":  # (over smtps the server speaks nothing but TLS anyway)
        assert mailbox.tls == [True]


# --- the command ---------------------------------------------------------------------------------


@sqlite_only
def test_digest_send_dry_run_prints_and_sends_nothing_then_sends(
    db_url: str,
    runtime: Runtime,
    smtp: SmtpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_people(runtime)
    config = tmp_path / "taskplanner.toml"
    config.write_text(
        f"""
[organisation]
name = "Acme"
account_owner = "{f.ADA}"
timezone = "Europe/Berlin"

[database]
url = "{db_url}"

[[people]]
email = "{f.CORA}"
name = "Cora Coordinator"
role = "coordinator"

[digest]
send_at = "08:00"
smtp_url_env = "TEST_DIGEST_SMTP_URL"
from = "{SENDER}"
page_url = "{PAGE}"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("TEST_DIGEST_SMTP_URL", smtp.url)

    dry = CliRunner().invoke(cli, ["digest", "send", "--dry-run", "--config", str(config)])
    assert dry.exit_code == 0, dry.output
    assert f"To: {f.CORA}" in dry.output and f"To: {f.SAM}" in dry.output
    assert "Subject: Acme taskplanner: 4 open tasks" in dry.output
    assert "You have 4 open tasks" in dry.output  # ready to schedule for 2 days: overdue
    assert "dry run: 2 email(s) would be sent, none sent" in dry.output
    assert f.CARL not in dry.output
    assert smtp.mailbox.received == []

    sent = CliRunner().invoke(cli, ["digest", "send", "--config", str(config)])
    assert sent.exit_code == 0, sent.output
    assert "sent 2, failed 0" in sent.output
    assert smtp.mailbox.recipients() == [f.CORA, f.SAM]
    again = CliRunner().invoke(cli, ["digest", "send", "--config", str(config)])
    assert "sent 0, failed 0, already sent today 2" in again.output


@sqlite_only
def test_digest_send_dry_run_needs_no_mail_settings(
    db_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    """Someone trying taskplanner out sees what the email would say before setting up SMTP."""
    seed_people(runtime)
    config = tmp_path / "taskplanner.toml"
    config.write_text(
        f"""
[organisation]
name = "Acme"
account_owner = "{f.ADA}"
timezone = "Europe/Berlin"

[server]
public_url = "{PAGE}"

[database]
url = "{db_url}"
""",
        encoding="utf-8",
    )
    dry = CliRunner().invoke(cli, ["digest", "send", "--dry-run", "--config", str(config)])
    assert dry.exit_code == 0, dry.output
    assert f"To: {f.CORA}" in dry.output and "You have 4 open tasks" in dry.output
    assert f"Your task list: {PAGE}?assignee=cora%40acme.example" in dry.output
    assert "dry run: 2 email(s) would be sent, none sent" in dry.output

    sent = CliRunner().invoke(cli, ["digest", "send", "--config", str(config)])
    assert sent.exit_code == 2
    assert "digest: missing section [digest] (needed to send email)" in sent.output


# --- the job coordinator's "On your jobs" --------------------------------------------------------


def applicant(
    n: int, name: str, *, job_id: str = "j1", coordinator: str | None = None
) -> list[Any]:
    stage = "s-phone" if job_id == "j1" else "s2-phone"
    return [
        f.candidate(f"c{n}", name=name, email=f"p{n}@example.com", coordinator=coordinator),
        f.application(f"a{n}", candidate_id=f"c{n}", job_id=job_id, stage=stage),
    ]


def test_a_job_coordinator_hears_about_their_jobs_by_holder_and_new_applicants(
    runtime: Runtime, clock: FrozenClock, smtp: SmtpServer, sleeps: list[float]
) -> None:
    # Before go-live: Old Timer's application was there before taskplanner; not new.
    runtime.pipeline.ingest_now(
        [f.job("j1"), *applicant(1, "Old Timer", coordinator=f.CARL)], baseline=True
    )
    with transaction(runtime.db) as session:
        runtime.pipeline.go_live(session, ats=True)  # Old Timer is ready to schedule
    clock.advance(timedelta(minutes=5))
    runtime.pipeline.ingest_now(
        [
            *applicant(2, "Ada Lovelace"),  # ready to schedule, for Cora (the job's coordinator)
            *applicant(3, "Bob Byte", coordinator=f.CARL),  # for Carl, his candidate
            f.job("j2", name="Data Analyst", coordinator=f.SAM, stages=SAM_STAGES),
            *applicant(4, "Dora Data", job_id="j2", coordinator=f.CARL),
        ]
    )
    [sams] = [t for t in open_tasks(runtime.db) if t.assignee == f.SAM]  # j2's new_job
    complete_by_hand(runtime.pipeline, sams.id, by=f.SAM)

    clock.now = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    run = tick(runtime, clock, sleeps)
    assert sorted(run.sent) == [f.CARL, f.CORA, f.SAM]

    cora = text_of(smtp.mailbox.to(f.CORA))
    on_jobs = cora.split("On your jobs:\n\n")[1]
    assert on_jobs.startswith(
        "Software Engineer: 3 open tasks\n"
        "  carl@acme.example     2\n"
        "  Cora Coordinator      1\n"
        "  New applicants since your last email: 2 (Ada Lovelace, Bob Byte)\n"
    )
    assert "Data Analyst" not in cora  # Sam's job
    html = html_of(smtp.mailbox.to(f.CORA))
    assert "On your jobs" in html and "Ada Lovelace, Bob Byte" in html

    # Sam holds nothing himself now, and still hears about his job.
    sam_message = smtp.mailbox.to(f.SAM)
    assert sam_message["Subject"] == "Acme taskplanner: on your jobs, 1 open task, 1 new applicant"
    sam = text_of(sam_message)
    assert "You have no open tasks of your own." in sam
    assert "Data Analyst: 1 open task\n  carl@acme.example     1\n" in sam
    assert "New applicants since your last email: 1 (Dora Data)" in sam
    assert "On your jobs" not in text_of(smtp.mailbox.to(f.CARL))  # he coordinates no job

    # The next morning: only who applied since yesterday's email is new.
    clock.now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    runtime.pipeline.ingest_now(applicant(5, "Cleo Code"))
    clock.now = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    smtp.mailbox.received.clear()
    tick(runtime, clock, sleeps)
    cora = text_of(smtp.mailbox.to(f.CORA))
    assert "Software Engineer: 4 open tasks\n" in cora
    assert "  New applicants since your last email: 1 (Cleo Code)\n" in cora
    sam = text_of(smtp.mailbox.to(f.SAM))
    assert "Data Analyst: 1 open task\n" in sam
    assert "No new applicants since your last email." in sam
