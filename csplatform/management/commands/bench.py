import signal
import sys

from django.core.management.base import BaseCommand, CommandError

from bench.database import BenchError
from bench.run import FIGURES, bench_run
from bench.scales import SCALES


class Command(BaseCommand):
    help = "Build a large tenant on PostgreSQL and print each performance figure beside its baseline (`make bench`)."

    def add_arguments(self, parser):
        parser.add_argument("--scale", choices=sorted(SCALES), default="small")
        parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES),
                            help="Measure only these figures (the build is measured unless --reuse).")
        parser.add_argument("--out", help="Where to write the results JSON (default var/bench/results.json).")
        parser.add_argument("--reuse", action="store_true",
                            help="Measure on the tenants the last run built instead of rebuilding; the figures "
                            "measured replace theirs in the results file.")

    def handle(self, *args, scale, only, out, reuse, **options):
        # Turn a TERM (Ctrl-C in make, a CI timeout) into an exit that stops the server and workers it started.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            bench_run(scale_name=scale, only=only, out=out, reuse=reuse, log=self.stdout.write)
        except BenchError as exc:
            raise CommandError(str(exc))
