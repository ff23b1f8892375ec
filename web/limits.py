"""Rate limits per client with Flask-Limiter: chat messages, and admin calls refused for a wrong token.

The client is the address the last PROXY_HOPS trusted proxies saw (ProxyFix over
X-Forwarded-For); with no trusted proxy the header is ignored, so it cannot be forged to
dodge a limit. Counts live in RATELIMIT_STORAGE_URI: memory:// counts per process,
redis://… once for every worker and replica.
"""

from __future__ import annotations

import math
import time

from flask import Flask
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings
from telemetry.metrics import RATE_LIMITED
from web import admin, chat, training
from web.errors import error_response

REFUSED = (401, 403)


def init_limits(app: Flask, settings: Settings) -> Limiter:
    """Trust the configured proxies, then limit chat per client and failed admin sign-ins per client."""
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops)
    # Flask-Limiter's own headers would put Retry-After on every answer, and raise Groq's on a 503.
    limiter = Limiter(get_remote_address, app=app, storage_uri=settings.ratelimit_storage_uri,
                      headers_enabled=False, key_prefix="therapistai")
    limiter.limit(settings.chat_rate_limit, methods=["POST"])(chat.bp)
    # One count over every admin endpoint: guessing the token costs, using it does not.
    admin_limit = limiter.shared_limit(settings.admin_rate_limit, scope="admin",
                                       deduct_when=lambda response: response.status_code in REFUSED)
    for blueprint in (admin.bp, training.bp):
        admin_limit(blueprint)
    app.register_error_handler(RateLimitExceeded, lambda e: _rate_limited(limiter, e))
    return limiter


def _rate_limited(limiter: Limiter, error: RateLimitExceeded):
    """429 rate_limited, with the seconds until the breached window resets in Retry-After."""
    RATE_LIMITED.inc()
    breached = limiter.current_limit
    wait = max(1, math.ceil(breached.reset_at - time.time())) if breached else 60
    return error_response(429, "rate_limited", f"Too many requests from this address (the limit is "
                          f"{error.description}). Try again in {wait} seconds.", {"Retry-After": str(wait)})
