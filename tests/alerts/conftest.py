import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from health.defaults import scorecards_apply_defaults
from lifecycle.services import stages_apply_template


class Receiver:
    """A real HTTP server on a loopback port that records each POST and answers with the scripted statuses.

    With a `secret` it follows the recipe in alerts/webhooks.py: it refuses
    (400) what verify_signature refuses, and answers 200 to an event id it
    has already processed without processing it again (`processed`).
    """

    def __init__(self, statuses=(), secret=None):
        self.statuses = list(statuses)
        self.secret = secret
        self.requests = []
        self.refusals = []
        self.processed = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.answer(dict(self.headers), body)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, headers, body):
        from alerts.webhooks import SignatureError, verify_signature

        with self.lock:
            self.requests.append({"headers": headers, "body": body, "json": json.loads(body)})
            event_id = None
            if self.secret is not None:
                try:
                    event_id = verify_signature(self.secret, headers.get("CSP-Signature"), body)["id"]
                except SignatureError as exc:
                    self.refusals.append(str(exc))
                    return 400
                if event_id in self.processed:
                    return 200
            status = self.statuses.pop(0) if self.statuses else 200
            if event_id is not None and status < 300:
                self.processed.append(event_id)
            return status

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def allow_private(settings):
    settings.CSP_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def receiver(allow_private):
    with Receiver() as running:
        yield running


@pytest.fixture
def lifecycle_tenant(tenant, alice):
    """Seed 001's lifecycle (onboarding -> adopting -> expanding -> renewal) and the default scorecards."""
    stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=alice)
    scorecards_apply_defaults(tenant=tenant)
    return tenant



def move(tenant, account, stage_key, actor=None):
    """Put an account in a stage by hand, as a CSM would."""
    from lifecycle.models import Stage
    from lifecycle.services import account_move_stage

    stage = Stage.objects.for_tenant(tenant).get(key=stage_key)
    account_move_stage(tenant=tenant, account=account, to_stage=stage, actor=actor, reason="Test setup.")


def send_events(api, account, contact, event, days_ago, count=1):
    """Ingest `count` events through the batch API, `days_ago` days back."""
    import datetime as dt

    from django.utils import timezone

    at = timezone.now() - dt.timedelta(days=days_ago)
    events = [
        {
            "message_id": f"{account.external_id}-{contact.external_id if contact else 0}-{event}-{days_ago}-{n}",
            "account": account.external_id,
            **({"contact": contact.external_id} if contact else {}),
            "event": event,
            "timestamp": (at - dt.timedelta(minutes=n)).isoformat(),
        }
        for n in range(count)
    ]
    response = api.post("/api/v1/events/batch", {"events": events}, format="json")
    assert response.status_code == 200, response.content
