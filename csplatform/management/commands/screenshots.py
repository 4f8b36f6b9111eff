import threading
from pathlib import Path

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db.models import F

from csplatform.customers.models import Account
from csplatform.tenancy.models import Membership, Role, Tenant

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = (1280, 800)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class Command(BaseCommand):
    help = (
        "Render every main dashboard page of a tenant (the demo by default) in chromium, at 1280 and 800 "
        "pixels wide, into var/screenshots/. Run `make run`'s setup (seed_demo, demo_setup) first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--out", default=str(Path(settings.BASE_DIR) / "var" / "screenshots"))

    def handle(self, *args, tenant, out, **options):
        """1. Find the tenant, an admin to sign in as, and the account in the worst health to show.
        2. Serve the site (static files included) on a free loopback port in a thread.
        3. Open each page with a session cookie of the admin and save a full-page screenshot per width.
        """
        # Playwright is a development dependency; the command must not break `manage.py` without it.
        from playwright.sync_api import sync_playwright

        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug {tenant!r}; run seed_demo and demo_setup first.")
        admin = Membership.objects.for_tenant(tenant_obj).filter(role=Role.ADMIN).select_related("user").first()
        if admin is None:
            raise CommandError(f"Tenant {tenant!r} has no admin to sign in as.")
        if not CHROMIUM.exists():
            raise CommandError(f"{CHROMIUM} is missing: install Debian's chromium package.")
        account = Account.objects.for_tenant(tenant_obj).order_by(F("health__score").asc(nulls_last=True), "pk").first()
        pages = {
            "portfolio": "",
            "board": "board/",
            "reports": "reports/",
            "alerts": "alerts/",
            "tasks": "tasks/",
            "outbox": "outbox/",
        }
        if account is not None:
            pages["account"] = f"accounts/{account.pk}/"

        server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
        server.set_app(StaticFilesHandler(get_wsgi_application()))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}/t/{tenant_obj.slug}/"
        # Before playwright starts: its event loop makes Django refuse database calls in this thread.
        session_key = self.session_for(admin.user)
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                context = browser.new_context()
                context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session_key, "url": base}])
                page = context.new_page()
                for width in WIDTHS:
                    page.set_viewport_size({"width": width, "height": 900})
                    for name, path in pages.items():
                        page.goto(base + path)
                        page.wait_for_load_state("networkidle")
                        target = out_dir / f"{tenant_obj.slug}-{name}-{width}.png"
                        page.screenshot(path=str(target), full_page=True)
                        self.stdout.write(str(target))
                browser.close()
        finally:
            server.shutdown()

    def session_for(self, user):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        return session.session_key
