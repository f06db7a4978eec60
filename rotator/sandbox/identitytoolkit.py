"""Emulate Identity Toolkit's public project config under `/google/identitytoolkit`.

`GET /v1/projects?key=` is how a validator proves an Identity Platform web key works: it
is cheap and has no side effects. A browser-restricted key needs a matching `Referer`,
and a new key is refused until its propagation delay has passed.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from rotator.sandbox.google_apikeys import google_error
from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World

SERVICE = "identitytoolkit.googleapis.com"


def _invalid_key() -> Reply:
    return google_error(
        400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID"
    )


def _project_config(world: World, request: Request) -> Reply:
    value = request.query.get("key") or request.header("x-goog-api-key")
    if not value:
        return google_error(
            403,
            "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
        )
    key = world.apikeys.by_string(value)
    if key is None or not key.live(world.now()):
        return _invalid_key()
    restrictions = key.restrictions
    targets = restrictions.get("apiTargets") or []
    if targets and not any(t.get("service") == SERVICE for t in targets if isinstance(t, dict)):
        return google_error(
            403,
            f"Requests to this API {SERVICE} method are blocked.",
            reason="API_KEY_SERVICE_BLOCKED",
        )
    browser = restrictions.get("browserKeyRestrictions") or {}
    allowed = browser.get("allowedReferrers") or []
    referer = request.header("referer") or ""
    if allowed and not any(fnmatchcase(referer, str(pattern)) for pattern in allowed):
        shown = referer or "<empty>"
        return google_error(
            403,
            f"Requests from referer {shown} are blocked.",
            reason="API_KEY_HTTP_REFERRER_BLOCKED",
        )
    project_id = world.apikeys.project_id(key.project_number)
    payload = {
        "projectId": project_id,
        "apiKey": value,
        "authorizedDomains": ["localhost", "bandofbakers.co.uk", "staging.bandofbakers.co.uk"],
        "allowPasswordUser": True,
        "enableAnonymousUser": False,
        "useEmailSending": True,
        "idpConfig": [{"provider": "GOOGLE", "enabled": True}],
    }
    return Reply.json(200, payload)


FAMILY = Family("google", "/google/identitytoolkit", google_error)

ROUTES: list[Route] = [route("GET", "/google/identitytoolkit/v1/projects", _project_config)]
