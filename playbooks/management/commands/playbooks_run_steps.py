import time

from django.core.management.base import BaseCommand

from playbooks.runner import steps_run_due


class Command(BaseCommand):
    help = "Execute due playbook steps; with --loop keep polling (a worker without Celery)."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=100)
        parser.add_argument("--loop", action="store_true")
        parser.add_argument("--interval", type=float, default=1.0)

    def handle(self, *args, limit, loop, interval, **options):
        while True:
            executed = steps_run_due(limit=limit)
            self.stdout.write(f"executed {executed}", ending="\n")
            self.stdout.flush()
            if not loop:
                return
            if executed < limit:
                time.sleep(interval)
