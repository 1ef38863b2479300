"""Demo workload: answers every GET or POST with its own name as JSON.

Part of the smictl chart's demo app graph (values-demo.yaml). The sidecar in front of it decides
who may reach it; this server only says who answered, so split ratios are visible in the
callers' logs.
"""

import http.server
import json
import os

NAME = os.environ.get("DEMO_NAME", "demo")
# Loopback only: the sidecar reaches the app on 127.0.0.1 and nothing redirects a pod's traffic
# (no iptables step), so a port bound to the pod's IP is one every other pod reaches without
# passing the proxy: the intruder would skip its http_proxy and pay.
BIND = os.environ.get("DEMO_BIND", "127.0.0.1")
PORT = int(os.environ.get("DEMO_PORT", "8080"))


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "smictl-demo"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"service": NAME, "method": self.command, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the callers log every exchange."""


if __name__ == "__main__":
    http.server.ThreadingHTTPServer((BIND, PORT), Handler).serve_forever()
