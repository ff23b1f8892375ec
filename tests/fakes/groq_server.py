"""A loopback stand-in for Groq's OpenAI-compatible chat API.

The real `groq` SDK talks to it over HTTP. Tests script what it does next
(status codes, delays, malformed bodies, dropped streams) and read back the
requests it received. Run it alone with `python -m tests.fakes.groq_server`.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATH = "/openai/v1/chat/completions"


@dataclass
class Behaviour:
    """How the fake answers one request."""

    status: int = 200
    text: str | None = None  # None: echo the last user message
    delay: float = 0.0  # seconds before answering
    chunk_delay: float = 0.0  # seconds between streamed chunks
    headers: dict = field(default_factory=dict)
    malformed: bool = False  # a 200 whose body is not a chat completion
    drop_after_chunks: int | None = None  # end the stream early, without [DONE], as ``drop`` says
    drop: str = "close"  # close: a clean end of the body; reset: a TCP reset; stall: nothing more is sent


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5; two workers of 64 threads may connect at once (a suspect
    # in one 502 seen in the 200-chat gunicorn test on a loaded machine)
    request_queue_size = 128


@dataclass
class Received:
    """One request as the fake saw it."""

    path: str
    headers: dict
    body: dict


class FakeGroq:
    """The server and its script; use as a context manager or call start/stop."""

    def __init__(self, port: int = 0, model: str = "fake-groq-model"):
        self.model = model
        self.default = Behaviour()
        self.script: deque[Behaviour] = deque()
        self.scripts_by_model: dict[str, deque[Behaviour]] = {}  # before ``script``, for requests naming the model
        self.received: deque[Received] = deque(maxlen=10_000)
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """What GROQ_BASE_URL should be set to."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeGroq":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeGroq":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def then(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these behaviours, in order."""
        with self._lock:
            self.script.extend(behaviours)

    def then_for(self, model: str, *behaviours: Behaviour) -> None:
        """Answer the next requests for this model with these behaviours, in order, whatever else is scripted."""
        with self._lock:
            self.scripts_by_model.setdefault(model, deque()).extend(behaviours)

    def reset(self) -> None:
        """Forget the scripts and the received requests."""
        with self._lock:
            self.default = Behaviour()
            self.script.clear()
            self.scripts_by_model.clear()
            self.received.clear()

    def requests_for(self, model: str) -> list[Received]:
        """The requests that named this model."""
        with self._lock:
            return [r for r in self.received if r.body.get("model") == model]

    def next_behaviour(self, received: Received) -> Behaviour:
        """Record a request and pick how to answer it."""
        with self._lock:
            self.received.append(received)
            if own := self.scripts_by_model.get(received.body.get("model")):
                return own.popleft()
            return self.script.popleft() if self.script else self.default


def reply_text(body: dict, behaviour: Behaviour) -> str:
    """The scripted text, or an echo of the last user message."""
    if behaviour.text is not None:
        return behaviour.text
    users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
    return f"You said: {users[-1] if users else ''}"


def completion_json(model: str, text: str, body: dict) -> dict:
    """A non-streamed chat completion as Groq returns it."""
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    completion_tokens = len(text.split())
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def stream_chunks(model: str, text: str, body: dict):
    """The chunks of a streamed completion; Groq puts usage under x_groq on the last one."""
    whole = completion_json(model, text, body)
    words = text.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        yield {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": whole["created"],
               "model": model, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
    yield {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": whole["created"], "model": model,
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
           "x_groq": {"id": "req_fake", "usage": whole["usage"]}}


def _handler_for(fake: FakeGroq):
    """A request handler class bound to one FakeGroq."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, *args):  # quiet: tests read `received` instead
            pass

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.loads(raw or b"{}")
            behaviour = fake.next_behaviour(Received(self.path, dict(self.headers), body))
            time.sleep(behaviour.delay)
            if self.path != CHAT_PATH:
                return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            if behaviour.status != 200:
                error = {"error": {"message": f"fake error {behaviour.status}", "type": "fake_error"}}
                return self._json(behaviour.status, error, behaviour.headers)
            if behaviour.malformed:
                return self._raw(200, b"<html>this is not json</html>", "application/json")
            text = reply_text(body, behaviour)
            if body.get("stream"):
                return self._stream(text, body, behaviour)
            return self._json(200, completion_json(fake.model, text, body), behaviour.headers)

        def _json(self, status: int, payload: dict, headers: dict | None = None):
            self._raw(status, json.dumps(payload).encode(), "application/json", headers)

        def _raw(self, status: int, data: bytes, content_type: str, headers: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, text: str, body: dict, behaviour: Behaviour):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for i, chunk in enumerate(stream_chunks(fake.model, text, body)):
                    if behaviour.drop_after_chunks is not None and i >= behaviour.drop_after_chunks:
                        return self._drop(behaviour.drop)
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(behaviour.chunk_delay)
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up, as clients do

        def _drop(self, how: str):
            """End a stream the way a failing network does."""
            if how == "reset":  # linger 0: close() sends RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            elif how == "stall":  # the connection stays open and silent until the client gives up
                time.sleep(STALL_SECONDS)

    return Handler


STALL_SECONDS = 30.0


def main() -> None:
    """Serve until interrupted; print the base URL first."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--text", help="the reply to every request (default: an echo of the last user message)")
    args = parser.parse_args()
    fake = FakeGroq(args.port)
    fake.default = Behaviour(delay=args.delay, text=args.text)
    print(fake.base_url, flush=True)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
