"""/readyz through the real app (uvicorn on 127.0.0.1) while an integration breaks and recovers:
the error shows while it is current and turns into history once the integration syncs again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from taskplanner.sandbox.fake_greenhouse import seed_organisation
from tests.greenhouse_env import GREENHOUSE, GreenhouseEnv, greenhouse_env, make_connector


@pytest.fixture
def env(db_url: str) -> Iterator[GreenhouseEnv]:
    with greenhouse_env(db_url) as environment:
        seed_organisation(environment.fake, jobs=1, applications_per_job=1)
        environment.runtime.use_connector(GREENHOUSE, make_connector(environment.fake))
        yield environment


def greenhouse_readiness(env: GreenhouseEnv) -> dict[str, object]:
    response = env.http.get(f"{env.url}/readyz")
    assert response.status_code == 200, response.text
    integration: dict[str, object] = response.json()["integrations"][GREENHOUSE]
    return integration


def test_readyz_shows_an_integration_error_only_until_the_integration_recovers(
    env: GreenhouseEnv,
) -> None:
    assert env.sync().ok
    healthy = greenhouse_readiness(env)
    assert (healthy["state"], healthy["last_error"]) == ("ok", None)
    assert healthy["last_failure_at"] is None

    env.fake.revoke_credentials()
    assert not env.sync().ok
    broken = greenhouse_readiness(env)
    assert broken["state"] == "broken"
    assert isinstance(broken["last_error"], str) and "401" in broken["last_error"]
    assert broken["last_failure_at"] is not None

    env.fake.restore_credentials()
    assert env.sync().ok
    recovered = greenhouse_readiness(env)
    assert recovered["state"] == "ok"
    assert recovered["last_error"] is None  # no longer shown as if it were current
    # ...but when it last failed stays visible, before the success that ended it.
    assert recovered["last_failure_at"] == broken["last_failure_at"]
    assert str(recovered["last_success_at"]) > str(recovered["last_failure_at"])


def test_readyz_and_metrics_never_show_the_integration_credentials(env: GreenhouseEnv) -> None:
    env.fake.revoke_credentials()
    assert not env.sync().ok

    for path in ("/readyz", "/metrics"):
        body = env.http.get(env.url + path).text
        for secret in (env.fake.client_secret, env.secret, *env.fake._tokens):
            assert secret not in body, path
