"""Serve this machine's metrics on a port: for machines that run workers but no web server.

The per-process figures of every qcluster process on the machine (PROMETHEUS_MULTIPROC_DIR) are
served; the database figures are left to the web's /metrics unless --with-database is given, so
a fleet of worker machines does not multiply the same series (and the same queries).
"""

from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.core.management.base import BaseCommand
from prometheus_client import CONTENT_TYPE_LATEST

from config.metrics import metrics_render, scrape_allowed


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # scrapes every few seconds would flood the log
        pass


class Command(BaseCommand):
    help = "Serve this machine's Prometheus metrics (token or allow-list as for /metrics)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9108)
        parser.add_argument("--with-database", action="store_true", help="Include the database figures")

    def handle(self, *args, **options):
        database = options["with_database"]

        def app(environ, start_response):
            if not scrape_allowed(environ.get("HTTP_AUTHORIZATION", ""), environ.get("REMOTE_ADDR", "")):
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"Forbidden\n"]
            body = metrics_render(database=database)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]

        server = make_server(options["bind"], options["port"], app, handler_class=_QuietHandler)
        self.stdout.write(f"Serving metrics on http://{options['bind']}:{options['port']}/")
        server.serve_forever()
