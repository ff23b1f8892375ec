"""The two HTML pages: the chat at /, the admin dashboard at /admin. Everything they load is ours."""

from __future__ import annotations

from flask import Blueprint, render_template

from web.services import services

bp = Blueprint("pages", __name__)

# Nothing from outside the service: clinics may have no open internet, and nothing else should run here.
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"


@bp.get("/")
def chat_page():
    """Chat for patients and clinicians."""
    svc = services()
    settings = svc.settings
    return _page("chat.html", crisis_resources=svc.turns.resources.for_language("en"),
                 consent_default=settings.training_consent_default, max_chars=settings.max_message_chars,
                 memory_enabled=settings.memory_enabled)


@bp.get("/admin")
def admin_page():
    """The dashboard; its data comes from the admin API with the token the admin enters."""
    return _page("admin.html")


def _page(template: str, **context):
    """A rendered page with headers that keep it to this origin."""
    return render_template(template, **context), 200, {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
