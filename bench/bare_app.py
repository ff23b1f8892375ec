"""The baseline for bench/chat_overhead.py: a Flask JSON endpoint that does no work."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/health")
def health():
    return jsonify({"status": "ok"})


@app.post("/api/chat")
def chat():
    """Parse the body and answer at once: HTTP, WSGI and JSON cost only."""
    body = request.get_json()
    return jsonify({"reply": f"You said: {body['message']}", "session_id": body.get("session_id") or "bare"})
