"""A shop's webhook receiver for the tests: a real HTTP server on 127.0.0.1 in a thread.

It answers with the statuses it is given, in turn (then 200), and keeps every request.
``verify`` is the README's verification snippet, word for word.
"""

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> dict:
    """Check X-VIP-Signature and the replay window; return the event, or raise ValueError."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    if abs(time.time() - timestamp) > tolerance:
        raise ValueError("timestamp outside the replay window")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), parts.get("v1", "")):
        raise ValueError("bad signature")
    return json.loads(body)


@dataclass
class Received:
    headers: dict
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def answer_with(self, *statuses: int) -> None:
        self.statuses[:] = list(statuses)

    def event_ids(self) -> list[str]:
        return [r.event["id"] for r in self.received]


def start_receiver():
    """(server, receiver): call server.shutdown() when done."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.received.append(Received(headers=dict(self.headers), body=body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/vip"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, receiver
