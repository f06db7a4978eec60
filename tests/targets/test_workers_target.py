from __future__ import annotations

import httpx
import pytest
from fake_cloudflare import ACCOUNT, TOKEN, URLS, FakeCredentials, Sleeps, envelope

from providers.http import HttpClient
from rotator.errors import RetryLaterError, TargetConfigError, TargetError
from rotator.secret import Secret
from rotator.targets.cloudflare_workers import WorkersSecretTarget

VALUE = "re_live_very-secret-value"


def workers(
    http: HttpClient,
    credentials: FakeCredentials,
    script: str = "app-staging",
    variables: list[str] | None = None,
):
    options = {
        "account_id": ACCOUNT,
        "script": script,
        "variables": variables or ["RESEND_API_KEY", "OTHER"],
    }
    return WorkersSecretTarget(options, "staging", http, credentials, URLS)


def test_publish_puts_every_secret_in_one_bulk_patch_and_confirms_the_list(
    http, credentials, cloudflare
):
    target = workers(http, credentials)
    target.publish({"RESEND_API_KEY": Secret(VALUE), "OTHER": Secret("x")})

    assert cloudflare.scripts["app-staging"] == {"RESEND_API_KEY": VALUE, "OTHER": "x"}
    assert cloudflare.bodies("PATCH") == [
        {
            "secrets": {
                "OTHER": {"name": "OTHER", "text": "x", "type": "secret_text"},
                "RESEND_API_KEY": {"name": "RESEND_API_KEY", "text": VALUE, "type": "secret_text"},
            }
        }
    ]
    assert [r.method for r in cloudflare.requests] == ["PATCH", "GET"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in cloudflare.requests)
    assert str(cloudflare.requests[0].url) == (
        "https://cf.test/client/v4/accounts/acc/workers/scripts/app-staging/secrets-bulk"
    )


def test_by_default_only_the_secrets_the_script_holds_are_put(http, credentials, cloudflare):
    cloudflare.scripts["app-staging"] = {"RESEND_API_KEY": "old"}
    options = {"account_id": ACCOUNT, "script": "app-staging"}
    target = WorkersSecretTarget(options, "staging", http, credentials, URLS)
    target.publish({"RESEND_API_KEY": Secret(VALUE), "GCP_KEY": Secret("AIza-new")})

    assert cloudflare.scripts["app-staging"] == {"RESEND_API_KEY": VALUE}
    assert [list(b["secrets"]) for b in cloudflare.bodies("PATCH")] == [["RESEND_API_KEY"]]
    assert target.report() == [
        "cloudflare-workers app-staging: left GCP_KEY alone (the target does not hold it; "
        "list it under the target's variables option to add it)"
    ]


def test_publishing_again_is_safe(http, credentials, cloudflare):
    target = workers(http, credentials)
    target.publish({"RESEND_API_KEY": Secret(VALUE)})
    target.publish({"RESEND_API_KEY": Secret(VALUE)})
    assert cloudflare.scripts["app-staging"] == {"RESEND_API_KEY": VALUE}


def test_describe_names_the_script(http, credentials):
    assert workers(http, credentials).describe() == "cloudflare-workers app-staging"


def test_finish_does_nothing(http, credentials, cloudflare):
    workers(http, credentials).finish()
    assert cloudflare.requests == []


def test_missing_script_is_a_configuration_error(http, credentials):
    target = workers(http, credentials, script="app")
    with pytest.raises(TargetConfigError) as caught:
        target.publish({"RESEND_API_KEY": Secret(VALUE)})
    message = str(caught.value)
    assert "'app'" in message and ACCOUNT in message
    assert "environments.staging.targets" in message
    assert "tasks-staging" in message
    assert VALUE not in message


def test_a_put_that_lands_elsewhere_fails_the_publish(http, credentials, cloudflare):
    cloudflare.scripts["app"] = {}
    cloudflare.redirect_puts_to = "app"
    with pytest.raises(TargetError) as caught:
        workers(http, credentials).publish({"RESEND_API_KEY": Secret(VALUE)})
    assert "RESEND_API_KEY" in str(caught.value)
    assert "does not show it" in str(caught.value)


def test_a_refused_token_names_the_credential(http, cloudflare):
    target = workers(http, FakeCredentials({"cloudflare_api_token": "wrong"}))
    with pytest.raises(TargetConfigError) as caught:
        target.publish({"RESEND_API_KEY": Secret(VALUE)})
    message = str(caught.value)
    assert "cloudflare_api_token" in message and "[credentials]" in message
    assert "HTTP 403" in message and "10000" in message
    assert "wrong" not in message


def test_429_with_retry_after_is_waited_and_retried(http, credentials, cloudflare, sleeps):
    cloudflare.queued.append(
        envelope(status=429, errors=[(971, "Please wait")], **{"retry-after": "7"})
    )
    workers(http, credentials).publish({"RESEND_API_KEY": Secret(VALUE)})
    assert sleeps == [7.0]
    assert cloudflare.scripts["app-staging"] == {"RESEND_API_KEY": VALUE}


def test_the_five_minute_block_asks_to_retry_later(http, credentials, cloudflare, sleeps):
    cloudflare.queued.append(
        envelope(status=429, errors=[(971, "Please wait")], **{"retry-after": "300"})
    )
    with pytest.raises(RetryLaterError) as caught:
        workers(http, credentials).publish({"RESEND_API_KEY": Secret(VALUE)})
    assert caught.value.retry_after == 300.0
    assert sleeps == []
    assert cloudflare.scripts["app-staging"] == {}


def test_a_500_is_transient(http, credentials, cloudflare):
    cloudflare.queued.append(envelope(status=500, errors=[(10013, "internal")]))
    with pytest.raises(RetryLaterError):
        workers(http, credentials).publish({"RESEND_API_KEY": Secret(VALUE)})


def test_an_echoed_value_is_masked_in_the_error(http, credentials, cloudflare):
    cloudflare.queued.append(envelope(status=400, errors=[(10021, f"bad text {VALUE}")]))
    with pytest.raises(TargetError) as caught:
        workers(http, credentials).publish({"RESEND_API_KEY": Secret(VALUE)})
    assert VALUE not in str(caught.value)
    assert "10021" in str(caught.value)


def test_an_answer_without_envelope_is_a_target_error(http, credentials, cloudflare):
    cloudflare.queued.append(httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(TargetError, match="without its JSON envelope"):
        workers(http, credentials).publish({"RESEND_API_KEY": Secret(VALUE)})


def test_gradual_rollout_refusal_is_explained(http, credentials, cloudflare):
    cloudflare.queued.append(envelope(status=400, errors=[(10215, "not deployed")]))
    with pytest.raises(TargetError, match="gradual deployment"):
        workers(http, credentials).publish({"RESEND_API_KEY": Secret(VALUE)})


def test_without_http_client_the_target_says_so(credentials):
    target = WorkersSecretTarget(
        {"account_id": ACCOUNT, "script": "app-staging"}, "staging", None, credentials, URLS
    )
    with pytest.raises(TargetConfigError, match="HTTP client"):
        target.publish({"A": Secret("b")})


def test_default_base_url_is_cloudflare(credentials):
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return envelope([{"name": "A", "type": "secret_text"}])

    http = HttpClient(httpx.Client(transport=httpx.MockTransport(handler)), sleep=Sleeps())
    target = WorkersSecretTarget(
        {"account_id": "a", "script": "s"}, "staging", http, credentials, {}
    )
    target.publish({"A": Secret("b")})
    assert seen[0] == "https://api.cloudflare.com/client/v4/accounts/a/workers/scripts/s/secrets"


def test_the_cloudflare_token_is_read_at_each_request(http, cloudflare, tmp_path, monkeypatch):
    """Issue 13.7: a token replaced while the tool runs is used by the next request."""
    from rotator.credentials import InventoryCredentials
    from rotator.inventory import CredentialRef

    monkeypatch.setenv("CF_TOKEN_UNDER_TEST", "an-old-token")
    credentials = InventoryCredentials(
        {
            "cloudflare_api_token": CredentialRef(
                "cloudflare_api_token", "CF_TOKEN_UNDER_TEST", None
            )
        },
        tmp_path,
    )
    target = WorkersSecretTarget(
        {"account_id": ACCOUNT, "script": "app-staging", "variables": ["RESEND_API_KEY"]},
        "staging",
        http,
        credentials,
        URLS,
    )
    with pytest.raises(TargetConfigError):
        target.publish({"RESEND_API_KEY": Secret(VALUE)})
    monkeypatch.setenv("CF_TOKEN_UNDER_TEST", TOKEN)
    target.publish({"RESEND_API_KEY": Secret(VALUE)})
    assert cloudflare.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    assert cloudflare.scripts["app-staging"] == {"RESEND_API_KEY": VALUE}
