"""The admin guard: `Authorization: Bearer $ADMIN_TOKEN`."""

from __future__ import annotations

import hmac
from functools import wraps

from flask import request

from web.errors import ApiError
from web.services import services


def admin_only(view):
    """403 when no ADMIN_TOKEN is set, 401 unless the request carries it."""

    @wraps(view)
    def guarded(*args, **kwargs):
        expected = services().settings.admin_token
        if not expected:
            raise ApiError(403, "admin_disabled", "Admin endpoints are off: set ADMIN_TOKEN on the server.")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "Send the admin token as 'Authorization: Bearer <token>'.",
                           {"WWW-Authenticate": "Bearer"})
        return view(*args, **kwargs)

    return guarded
