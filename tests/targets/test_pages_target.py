from __future__ import annotations

import pytest
from fake_cloudflare import ACCOUNT, URLS, Deployment, envelope

from rotator.errors import RetryLaterError, TargetConfigError, TargetError
from rotator.secret import Secret
from rotator.targets.cloudflare_pages import PagesVariableTarget

RETRY = r"/deployments/[^/]+/retry$"


HELD = ["A", "B", "C", "RESEND_API_KEY"]


def pages(http, credentials, deployment="preview", project="shop", **extra):
    options = {"account_id": ACCOUNT, "project": project, "deployment": deployment, **extra}
    options.setdefault("variables", HELD)
    if deployment == "preview":
        options.setdefault("branch", "staging")
    return PagesVariableTarget(options, "staging", http, credentials, URLS)


def test_patch_sets_only_the_changed_variables_of_the_right_config(http, credentials, cloudflare):
    cloudflare.projects["shop"]["production"]["KEEP"] = {"type": "secret_text", "value": "p"}
    target = pages(http, credentials)
    target.publish({"RESEND_API_KEY": Secret("re_new")})

    assert cloudflare.bodies("PATCH") == [
        {
            "deployment_configs": {
                "preview": {
                    "env_vars": {"RESEND_API_KEY": {"type": "secret_text", "value": "re_new"}}
                }
            }
        }
    ]
    assert cloudflare.projects["shop"]["production"] == {
        "KEEP": {"type": "secret_text", "value": "p"}
    }
    assert cloudflare.requests[0].url.path == "/client/v4/accounts/acc/pages/projects/shop"


def test_publish_alone_does_not_redeploy(http, credentials, cloudflare):
    pages(http, credentials).publish({"A": Secret("1")})
    assert [r.method for r in cloudflare.requests] == ["PATCH"]


def test_one_redeploy_per_finish_after_three_publishes(http, credentials, cloudflare, sleeps):
    target = pages(http, credentials)
    target.publish({"A": Secret("1")})
    target.publish({"B": Secret("2")})
    target.publish({"C": Secret("3")})
    target.finish()

    assert cloudflare.count("POST", RETRY) == 1
    assert [
        b["deployment_configs"]["preview"]["env_vars"].keys() for b in cloudflare.bodies("PATCH")
    ] == [
        {"A"},
        {"B"},
        {"C"},
    ]
    listing = next(r for r in cloudflare.requests if r.url.path.endswith("/deployments"))
    assert listing.url.params["env"] == "preview"
    retry = next(r for r in cloudflare.requests if r.method == "POST")
    assert retry.url.path.endswith("/deployments/dep-preview/retry")
    # One poll answered "build", then the deploy stage succeeded.
    assert sleeps == [2.0]

    target.finish()
    assert cloudflare.count("POST", RETRY) == 1


def test_finish_without_publish_does_nothing(http, credentials, cloudflare):
    pages(http, credentials).finish()
    assert cloudflare.requests == []


def test_production_retries_the_latest_production_deployment(http, credentials, cloudflare):
    target = pages(http, credentials, deployment="production")
    target.publish({"A": Secret("1")})
    target.finish()
    retry = next(r for r in cloudflare.requests if r.method == "POST")
    assert retry.url.path.endswith("/deployments/dep-prod/retry")


def test_a_deployment_failing_at_deploy_fails_the_step(http, credentials, cloudflare):
    cloudflare.new_deployment_outcome = "failure"
    target = pages(http, credentials)
    target.publish({"A": Secret("secret-value")})
    with pytest.raises(TargetError) as caught:
        target.finish()
    assert (
        str(caught.value) == "Pages deployment dep-new-3 of shop (preview) failed at stage deploy"
    )
    assert "secret-value" not in str(caught.value)

    # The next finish starts a fresh redeploy instead of polling the failed one.
    cloudflare.new_deployment_outcome = "success"
    target.finish()
    assert cloudflare.count("POST", RETRY) == 2


def test_a_canceled_build_names_its_stage(http, credentials, cloudflare):
    cloudflare.new_deployment_outcome = "canceled"
    cloudflare.new_deployment_fail_stage = "build"
    target = pages(http, credentials)
    target.publish({"A": Secret("1")})
    with pytest.raises(TargetError, match="failed at stage build"):
        target.finish()


def test_polling_backs_off_and_gives_up_with_retry_later(http, credentials, cloudflare, sleeps):
    cloudflare.new_deployment_polls = 1000
    target = pages(http, credentials, redeploy_timeout=60)
    target.publish({"A": Secret("1")})
    with pytest.raises(RetryLaterError, match="still at stage build") as caught:
        target.finish()
    assert caught.value.retry_after is not None
    assert sleeps == [2.0, 4.0, 8.0, 16.0, 30.0]
    assert sum(sleeps) == 60.0

    # A later finish keeps polling the same deployment rather than starting another.
    cloudflare.deployments[-1].polls_left = 0
    target.finish()
    assert cloudflare.count("POST", RETRY) == 1


def test_missing_project_is_a_configuration_error(http, credentials):
    with pytest.raises(TargetConfigError) as caught:
        pages(http, credentials, project="nope").publish({"A": Secret("1")})
    assert "'nope'" in str(caught.value) and "environments.staging.targets" in str(caught.value)


def test_no_deployment_to_retry_is_explained(http, credentials, cloudflare):
    cloudflare.deployments = []
    target = pages(http, credentials)
    target.publish({"A": Secret("1")})
    with pytest.raises(TargetError, match="no successful preview deployment of branch 'staging'"):
        target.finish()


def test_rate_limit_block_during_publish_asks_to_retry_later(http, credentials, cloudflare):
    cloudflare.queued.append(envelope(status=429, errors=[(971, "wait")], **{"retry-after": "300"}))
    with pytest.raises(RetryLaterError) as caught:
        pages(http, credentials).publish({"A": Secret("1")})
    assert caught.value.retry_after == 300.0


def test_describe(http, credentials):
    assert pages(http, credentials).describe() == "cloudflare-pages shop (preview)"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"deployment": "staging"}, "deployment: must be production or preview"),
        ({"redeploy_timeout": 0}, "redeploy_timeout: must be a positive number"),
        ({"redeploy_timeout": "soon"}, "redeploy_timeout: must be a positive number"),
    ],
)
def test_option_values_are_checked(options, problem):
    base = {"account_id": ACCOUNT, "project": "shop", "deployment": "preview", "branch": "staging"}
    problems = PagesVariableTarget.validate_options({**base, **options})
    assert any(p.startswith(problem) for p in problems), problems


def test_production_rebuilds_the_live_deployment_after_a_rollback(http, credentials, cloudflare):
    cloudflare.deployments.insert(
        0, Deployment("dep-prod-good", "production", "2025-02-01T10:00:00Z", commit="a1")
    )
    cloudflare.canonical = "dep-prod-good"  # an operator rolled back from dep-prod
    target = pages(http, credentials, deployment="production")
    target.publish({"A": Secret("1")})
    target.finish()
    retry = next(r for r in cloudflare.requests if r.method == "POST")
    assert retry.url.path.endswith("/deployments/dep-prod-good/retry")
    assert target.report() == [
        "cloudflare-pages shop (production): rebuilt deployment dep-prod-good (branch main, "
        "commit a1) as dep-new-4: the live production deployment (canonical_deployment)"
    ]


def test_preview_rebuilds_the_newest_successful_build_of_its_branch(http, credentials, cloudflare):
    cloudflare.deployments += [
        Deployment(
            "dep-failed", "preview", "2025-03-05T10:00:00Z", outcome="failure", branch="staging"
        ),
        Deployment("dep-feature", "preview", "2025-03-06T10:00:00Z", branch="feature/checkout"),
    ]
    target = pages(http, credentials)
    target.publish({"A": Secret("1")})
    target.finish()
    retry = next(r for r in cloudflare.requests if r.method == "POST")
    assert retry.url.path.endswith("/deployments/dep-preview/retry")
    assert "newest successful preview deployment of branch staging" in target.report()[0]


def test_preview_needs_a_branch_and_production_refuses_one():
    base = {"account_id": ACCOUNT, "project": "shop"}
    preview = PagesVariableTarget.validate_options({**base, "deployment": "preview"})
    assert any(p.startswith("branch: required when deployment") for p in preview)
    production = PagesVariableTarget.validate_options(
        {**base, "deployment": "production", "branch": "main"}
    )
    assert any(p.startswith("branch: only for preview") for p in production)


def test_by_default_only_variables_the_config_holds_are_set(http, credentials, cloudflare):
    cloudflare.projects["shop"]["preview"]["A"] = {"type": "secret_text", "value": "old"}
    options = {"account_id": ACCOUNT, "project": "shop", "deployment": "preview"}
    target = PagesVariableTarget(
        {**options, "branch": "staging"}, "staging", http, credentials, URLS
    )
    target.publish({"A": Secret("1"), "GCP_KEY": Secret("2")})
    assert [
        b["deployment_configs"]["preview"]["env_vars"].keys() for b in cloudflare.bodies("PATCH")
    ] == [{"A"}]
    assert "left GCP_KEY alone" in target.report()[0]
