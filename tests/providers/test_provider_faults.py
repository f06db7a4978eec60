"""Each provider under faults: rate limits, 503, timeouts, lost answers, refused credentials."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from provider_fakes import SA_EMAIL, FakeWorld, Fault, MakeCtx

from providers import google_auth
from providers.gcp_identity import GcpIdentityApiKeyProvider
from providers.google_oauth import GoogleOAuthClientSecretProvider
from providers.http import HttpClient
from providers.resend import ResendProvider
from providers.stripe import StripeProvider
from rotator.errors import BadInputError, NeedsPersonError, ProviderRefusedError, RetryLaterError
from rotator.secret import Secret

TRANSIENT = [
    pytest.param("429", 2.0, id="429-retry-after-seconds"),
    pytest.param("429-date", 3.0, id="429-retry-after-date"),
    pytest.param("503", 0.0, id="503"),
    pytest.param("timeout", 0.0, id="timeout"),
]

# --- Resend -------------------------------------------------------------------------------

RESEND = "BANDOFBAKERS_RESEND_API_KEY"


def resend_ctx(world: FakeWorld, make_ctx: MakeCtx, **kw: Any) -> Any:
    key_id, token = world.resend.add_key("bootstrap")
    return make_ctx(RESEND, current=Secret(token), current_ref=key_id, **kw)


@pytest.mark.parametrize(("kind", "seconds"), TRANSIENT)
def test_resend_generate_survives_transient_faults_on_listing(
    world: FakeWorld, make_ctx: MakeCtx, kind: str, seconds: float
) -> None:
    ctx = resend_ctx(world, make_ctx)
    world.faults.append(Fault("GET", "^/api-keys$", kind, seconds))
    new = ResendProvider().generate(ctx)
    assert new.ref in world.resend.keys
    if kind.startswith("429"):
        assert seconds - 1 <= world.sleeps[0] <= seconds


def test_resend_create_is_retried_after_429(world: FakeWorld, make_ctx: MakeCtx) -> None:
    ctx = resend_ctx(world, make_ctx)
    world.faults.append(Fault("POST", "^/api-keys$", "429", 1.0))
    new = ResendProvider().generate(ctx)
    assert world.resend.named(new.notes["name"]) == [world.resend.keys[new.ref]]


@pytest.mark.parametrize("kind", ["503", "timeout"])
def test_resend_create_is_not_repeated_after_503_or_timeout(
    world: FakeWorld, make_ctx: MakeCtx, kind: str
) -> None:
    ctx = resend_ctx(world, make_ctx)
    world.faults.append(Fault("POST", "^/api-keys$", kind))
    with pytest.raises(RetryLaterError):
        ResendProvider().generate(ctx)
    posts = [r for r in world.requests if r.method == "POST"]
    assert len(posts) == 1


def test_resend_lost_create_answer_leaves_one_key_after_the_retry(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    ctx = resend_ctx(world, make_ctx)
    world.faults.append(Fault("POST", "^/api-keys$", "drop"))
    with pytest.raises(RetryLaterError) as caught:
        ResendProvider().generate(ctx)
    assert caught.value.provider == "resend" and caught.value.operation == "generate"
    name = next(k["name"] for k in world.resend.keys.values() if k["name"] != "bootstrap")
    assert len(world.resend.named(name)) == 1  # the create happened; the answer was lost
    lost = world.resend.named(name)[0]["id"]
    new = ResendProvider().generate(ctx)
    assert lost not in world.resend.keys  # its token was never seen, so it was deleted
    assert world.resend.named(name) == [world.resend.keys[new.ref]]


@pytest.mark.parametrize("status", [400, 401, 403])
def test_resend_invalid_current_key_is_refused_and_nothing_created(
    world: FakeWorld, make_ctx: MakeCtx, status: int
) -> None:
    world.resend.invalid_status = status
    ctx = make_ctx(RESEND, current=Secret("re_revoked_key_000000"))
    with pytest.raises(ProviderRefusedError) as caught:
        ResendProvider().generate(ctx)
    error = caught.value
    assert (error.provider, error.operation, error.status) == ("resend", "generate", status)
    assert "resend generate (HTTP" in str(error)
    assert world.resend.keys == {}
    assert not [r for r in world.requests if r.method == "POST"]


def test_resend_without_current_value_needs_a_person(make_ctx: MakeCtx) -> None:
    with pytest.raises(NeedsPersonError) as caught:
        ResendProvider().generate(make_ctx(RESEND))
    assert f"rotate supply {RESEND}" in caught.value.instruction


def test_resend_restricted_key_counts_as_valid(world: FakeWorld, make_ctx: MakeCtx) -> None:
    _, sending = world.resend.add_key("sending", permission="sending_access")
    options = {"permission": "sending_access"}
    ResendProvider().validate(make_ctx(RESEND, options=options), Secret(sending))
    assert ResendProvider().verify_revoked(make_ctx(RESEND), "x", Secret(sending)) is False


def test_resend_sending_key_where_full_access_is_configured_is_refused(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    _, sending = world.resend.add_key("sending", permission="sending_access")
    with pytest.raises(ProviderRefusedError, match="is a sending_access key"):
        ResendProvider().validate(make_ctx(RESEND), Secret(sending))


def test_resend_revoke_of_a_key_already_gone_succeeds(world: FakeWorld, make_ctx: MakeCtx) -> None:
    ctx = resend_ctx(world, make_ctx)
    ResendProvider().revoke(ctx, "00000000-0000-4000-8000-000000000000", None)


def test_resend_key_name_fits_the_50_character_limit(world: FakeWorld, make_ctx: MakeCtx) -> None:
    ctx = resend_ctx(world, make_ctx, rotation_id="0f8e7a9c-1b2d-4e3f-8a9b-0c1d2e3f4a5b")
    new = ResendProvider().generate(ctx)
    assert len(new.notes["name"]) <= 50
    assert "0f8e7a9c-1b2d-4e3f-8a9b-0c1d2e3f4a5b" in new.notes["name"]


# --- Stripe -------------------------------------------------------------------------------

STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"


@pytest.mark.parametrize(("kind", "seconds"), TRANSIENT)
def test_stripe_validate_survives_transient_faults(
    world: FakeWorld, make_ctx: MakeCtx, kind: str, seconds: float
) -> None:
    key = world.stripe.new_key()
    world.faults.append(Fault("GET", "^/v1/balance$", kind, seconds))
    StripeProvider().accept_supplied(make_ctx(STRIPE), Secret(key))
    assert len(world.requests) == 2


def test_stripe_unknown_key_is_refused(world: FakeWorld, make_ctx: MakeCtx) -> None:
    ctx = make_ctx(STRIPE, options={"propagation_seconds": 0})
    with pytest.raises(ProviderRefusedError) as caught:
        StripeProvider().accept_supplied(ctx, Secret("sk_live_" + "a" * 24))
    error = caught.value
    assert (error.provider, error.operation, error.status) == ("stripe", "validate", 401)
    assert "a" * 24 not in str(error)


@pytest.mark.parametrize(
    ("value", "live", "fragment"),
    [
        ("sk_test_" + "b" * 24, True, "test-mode key"),
        ("rk_live_" + "b" * 24, False, "live-mode key"),
        ("pk_live_" + "b" * 24, True, "not a Stripe secret or restricted key"),
        ("whsec_" + "b" * 24, True, "not a Stripe secret or restricted key"),
    ],
)
def test_stripe_wrong_shape_is_refused_before_any_call(
    world: FakeWorld, make_ctx: MakeCtx, value: str, live: bool, fragment: str
) -> None:
    ctx = make_ctx(STRIPE, options={"live": live})
    with pytest.raises(ProviderRefusedError) as caught:
        StripeProvider().accept_supplied(ctx, Secret(value))
    assert fragment in str(caught.value)
    assert "b" * 24 not in str(caught.value)
    assert world.requests == []


def test_stripe_expired_key_answers_revoked(world: FakeWorld, make_ctx: MakeCtx) -> None:
    key = world.stripe.new_key("sk")
    world.stripe.expire(key)
    assert StripeProvider().verify_revoked(make_ctx(STRIPE), "r", Secret(key)) is True
    with pytest.raises(ProviderRefusedError):
        StripeProvider().validate(make_ctx(STRIPE), Secret(key))


def test_stripe_instruction_warns_against_rotate_key(make_ctx: MakeCtx) -> None:
    with pytest.raises(NeedsPersonError) as caught:
        StripeProvider().generate(make_ctx(STRIPE))
    text = caught.value.instruction
    assert "ADDITIONAL" in text and "Do NOT use 'Rotate key'" in text and "7 days" in text
    assert text.rstrip().endswith(f"rotate supply {STRIPE}")


# --- Google Cloud API keys -----------------------------------------------------------------

GCP = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"


def gcp_ctx(world: FakeWorld, make_ctx: MakeCtx, **options: Any) -> Any:
    opts = {"project": world.google.project, "allowed_referrers": ["https://shop.example/*"]}
    opts.update(options)
    return make_ctx(GCP, options=opts)


def created_keys(world: FakeWorld) -> list[dict[str, Any]]:
    return [k for k in world.google.keys.values() if k["name"].endswith("2026q3-01")]


@pytest.mark.usefixtures("sa_key")
@pytest.mark.parametrize(("kind", "seconds"), [*TRANSIENT, pytest.param("drop", 0.0, id="drop")])
@pytest.mark.parametrize("where", ["/keys$", "^/v2/operations/", "/keyString$", "^/token$"])
def test_gcp_generate_survives_faults(
    world: FakeWorld, make_ctx: MakeCtx, kind: str, seconds: float, where: str
) -> None:
    method = "GET" if "operations" in where or "keyString" in where else "POST"
    world.faults.append(Fault(method, where, kind, seconds))
    new = GcpIdentityApiKeyProvider().generate(gcp_ctx(world, make_ctx))
    assert [k["keyString"] for k in created_keys(world)] == [new.value.reveal()]
    restrictions = created_keys(world)[0]["restrictions"]
    assert restrictions["apiTargets"] == [
        {"service": "identitytoolkit.googleapis.com"},
        {"service": "securetoken.googleapis.com"},
    ]
    assert restrictions["browserKeyRestrictions"] == {
        "allowedReferrers": ["https://shop.example/*"]
    }


@pytest.mark.usefixtures("sa_key")
def test_gcp_slow_operation_is_resumed_by_the_next_run(world: FakeWorld, make_ctx: MakeCtx) -> None:
    world.google.polls_until_done = 1000
    ctx = gcp_ctx(world, make_ctx, operation_timeout=20)
    with pytest.raises(RetryLaterError) as caught:
        GcpIdentityApiKeyProvider().generate(ctx)
    assert "next run resumes" in str(caught.value)
    assert sum(world.sleeps) <= 30
    new = GcpIdentityApiKeyProvider().generate(ctx)
    assert [k["keyString"] for k in created_keys(world)] == [new.value.reveal()]
    assert len([r for r in world.requests if r.method == "POST" and "/keys" in r.url.path]) == 1


def test_gcp_rejected_service_account_key_is_named(
    world: FakeWorld, make_ctx: MakeCtx, sa_key: dict[str, Any]
) -> None:
    del world.google.service_accounts[SA_EMAIL]  # Google no longer knows this key
    with pytest.raises(ProviderRefusedError) as caught:
        GcpIdentityApiKeyProvider().generate(gcp_ctx(world, make_ctx))
    message = str(caught.value)
    assert str(sa_key["path"]) in message and SA_EMAIL in message
    assert "invalid_grant" in message and caught.value.status == 400
    assert world.google.keys == {}


def test_gcp_missing_service_account_file_is_named(world: FakeWorld, make_ctx: MakeCtx) -> None:
    with pytest.raises(ProviderRefusedError) as caught:
        GcpIdentityApiKeyProvider().generate(gcp_ctx(world, make_ctx))
    assert "gcp-sa.json" in str(caught.value)


@pytest.mark.usefixtures("sa_key")
def test_gcp_access_token_is_cached_and_refreshed(world: FakeWorld, make_ctx: MakeCtx) -> None:
    http = world.http()
    path = make_ctx(GCP).credentials.path("gcp_service_account")
    now = [1_000_000.0]
    first = google_auth.access_token(http, path, provider="p", clock=lambda: now[0])
    assert google_auth.access_token(http, path, provider="p", clock=lambda: now[0]) is first
    now[0] += 3599 - 200  # inside the refresh margin
    assert google_auth.access_token(http, path, provider="p", clock=lambda: now[0]) != first
    assert world.google.token_requests == 2


@pytest.mark.usefixtures("sa_key")
def test_gcp_validate_waits_for_propagation_then_asks_to_retry_later(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    world.google.propagation_answers = 100
    ctx = gcp_ctx(world, make_ctx, validate_wait=20)
    new = GcpIdentityApiKeyProvider().generate(ctx)
    with pytest.raises(RetryLaterError) as caught:
        GcpIdentityApiKeyProvider().validate(ctx, new.value)
    assert caught.value.retry_after
    world.google.unpropagated.clear()
    GcpIdentityApiKeyProvider().validate(ctx, new.value)


@pytest.mark.usefixtures("sa_key")
def test_gcp_old_invalid_key_is_refused_at_once(world: FakeWorld, make_ctx: MakeCtx) -> None:
    ctx = gcp_ctx(world, make_ctx)
    with pytest.raises(ProviderRefusedError) as caught:
        GcpIdentityApiKeyProvider().validate(ctx, Secret("AIzaNotAKeyAtAll000000000000000"))
    assert caught.value.status == 400 and "API_KEY_INVALID" in str(caught.value)
    assert world.sleeps == []


@pytest.mark.usefixtures("sa_key")
def test_gcp_revoke_of_a_key_already_gone_succeeds(world: FakeWorld, make_ctx: MakeCtx) -> None:
    ref = f"projects/{world.google.project}/locations/global/keys/gone"
    notes = GcpIdentityApiKeyProvider().revoke(gcp_ctx(world, make_ctx), ref, None)
    assert notes is not None and "30 days" in notes["undelete"]


@pytest.mark.usefixtures("sa_key")
def test_gcp_key_blocked_by_referrer_is_not_counted_as_revoked(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    """Issue 13.5: a referrer block means the key exists and works for allowed callers."""
    key = world.google.add_key("old", {"browserKeyRestrictions": {"allowedReferrers": ["x/*"]}})
    ctx = gcp_ctx(world, make_ctx, validate_referer="https://elsewhere.example/")
    provider = GcpIdentityApiKeyProvider()
    assert provider.verify_revoked(ctx, key["name"], Secret(key["keyString"])) is False
    # Gone from the project: revoked, whatever the probe says.
    del world.google.keys[key["name"]]
    assert provider.verify_revoked(ctx, key["name"], Secret(key["keyString"])) is True


@pytest.mark.usefixtures("sa_key")
def test_gcp_canonical_ref_takes_a_key_id_or_a_resource_name(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    """Issue 18.3: `--ref idp-web-initial` is resolved to the key's resource name."""
    key = world.google.add_key("idp-web-initial")
    provider = GcpIdentityApiKeyProvider()
    ctx = gcp_ctx(world, make_ctx)
    assert provider.canonical_ref(ctx, "idp-web-initial") == key["name"]
    assert provider.canonical_ref(ctx, key["name"]) == key["name"]
    with pytest.raises(BadInputError, match="does not exist") as caught:
        provider.canonical_ref(ctx, "idp-web-missing")
    assert "projects/<project>/locations/global/keys/<key id>" in str(caught.value)
    with pytest.raises(BadInputError, match="not a Google Cloud API key reference"):
        provider.canonical_ref(ctx, "Not A Key!")
    assert caught.value.exit_code == 2


def test_gcp_revoke_refuses_a_ref_that_is_not_a_key_name(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    with pytest.raises(ProviderRefusedError):
        GcpIdentityApiKeyProvider().revoke(gcp_ctx(world, make_ctx), "projects/p/../x", None)
    assert world.requests == []


# --- Google OAuth client secrets ----------------------------------------------------------

CLIENT = "123-abc.apps.googleusercontent.com"


@pytest.mark.parametrize(("kind", "seconds"), TRANSIENT)
def test_google_oauth_validate_survives_transient_faults(
    world: FakeWorld, make_ctx: MakeCtx, kind: str, seconds: float
) -> None:
    world.google.oauth_clients[CLIENT] = {"GOCSPX-good"}
    world.faults.append(Fault("POST", "^/token$", kind, seconds))
    ctx = make_ctx("GOOGLE_CLIENT_SECRET", scope_env="local", options={"client_id": CLIENT})
    GoogleOAuthClientSecretProvider().validate(ctx, Secret("GOCSPX-good"))


def test_stripe_key_refused_just_after_it_was_made_is_waited_for(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    """Issue 13.4: a refusal inside the propagation window is retried, never final."""
    ctx = make_ctx(STRIPE, options={"propagation_seconds": 600, "validate_wait": 10})
    value = Secret("sk_live_" + "c" * 24)
    provider = StripeProvider()
    provider.remember_created(value)
    with pytest.raises(RetryLaterError, match="may take up to 600s") as caught:
        provider.validate(ctx, value)
    assert caught.value.retry_after is not None and caught.value.retry_after <= 30
    assert "c" * 24 not in str(caught.value)
    assert sum(world.sleeps) == 10


def test_a_supplied_key_is_waited_for_briefly_then_refused_as_stripe_says(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    ctx = make_ctx(STRIPE, options={"propagation_seconds": 600})
    with pytest.raises(ProviderRefusedError) as caught:
        StripeProvider().accept_supplied(ctx, Secret("sk_live_" + "d" * 24))
    assert caught.value.status == 401
    assert sum(world.sleeps) == 15  # supply_wait: a person is at the prompt


def test_google_oauth_unauthorized_client_means_the_secret_authenticated(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    """RFC 6749 §5.2: unauthorized_client comes only after the client authenticated."""
    answer = httpx.Response(400, json={"error": "unauthorized_client"})
    http = HttpClient(
        httpx.Client(transport=httpx.MockTransport(lambda request: answer)), sleep=lambda s: None
    )
    ctx = make_ctx("GOOGLE_CLIENT_SECRET", http=http, options={"client_id": CLIENT})
    GoogleOAuthClientSecretProvider().validate(ctx, Secret("GOCSPX-new"))
    assert GoogleOAuthClientSecretProvider().verify_revoked(ctx, "x", Secret("GOCSPX-new")) is False


def test_google_oauth_inconclusive_answer_asks_a_person(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    answer = httpx.Response(400, json={"error": "invalid_request"})
    http = HttpClient(
        httpx.Client(transport=httpx.MockTransport(lambda request: answer)), sleep=lambda s: None
    )
    ctx = make_ctx("GOOGLE_CLIENT_SECRET", http=http, options={"client_id": CLIENT})
    with pytest.raises(NeedsPersonError, match="proves neither"):
        GoogleOAuthClientSecretProvider().validate(ctx, Secret("GOCSPX-new"))


def test_google_oauth_wrong_secret_is_refused(world: FakeWorld, make_ctx: MakeCtx) -> None:
    world.google.oauth_clients[CLIENT] = {"GOCSPX-good"}
    ctx = make_ctx(
        "GOOGLE_CLIENT_SECRET",
        scope_env="local",
        options={"client_id": CLIENT, "propagation_seconds": 0},
    )
    with pytest.raises(ProviderRefusedError) as caught:
        GoogleOAuthClientSecretProvider().accept_supplied(ctx, Secret("GOCSPX-wrong"))
    error = caught.value
    assert (error.provider, error.status) == ("google-oauth", 401)
    assert CLIENT in str(error) and "GOCSPX-wrong" not in str(error)


def test_google_oauth_missing_client_id_is_named(make_ctx: MakeCtx) -> None:
    ctx = make_ctx("GOOGLE_CLIENT_SECRET", scope_env="production")
    with pytest.raises(ProviderRefusedError) as caught:
        GoogleOAuthClientSecretProvider().validate(ctx, Secret("GOCSPX-x"))
    assert "client_id" in str(caught.value) and "production" in str(caught.value)


@pytest.mark.usefixtures("sa_key")
def test_gcp_validate_finds_the_referer_from_the_key_itself(
    world: FakeWorld, make_ctx: MakeCtx
) -> None:
    restrictions = {"browserKeyRestrictions": {"allowedReferrers": ["https://shop.example/*"]}}
    old = world.google.add_key("initial", restrictions)
    ctx = make_ctx(GCP, options={"project": world.google.project}, current_ref=old["name"])
    new = GcpIdentityApiKeyProvider().generate(ctx)
    GcpIdentityApiKeyProvider().validate(ctx, new.value)
    probes = [r for r in world.requests if r.url.host == "identitytoolkit.googleapis.com"]
    assert [p.headers.get("referer") for p in probes] == [None, "https://shop.example/"]
