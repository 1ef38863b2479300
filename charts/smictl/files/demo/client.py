"""Demo caller: sends the requests in DEMO_TARGETS forever and logs one JSON line per answer.

DEMO_TARGETS is a comma-separated list of "METHOD URL". urllib honours the http_proxy
environment (the chart points it at the injected proxy's outbound listener), so the proxy sees
every call. A denied call shows as its HTTP status (403) or as a connection error.
"""

import json
import os
import time
import urllib.error
import urllib.request

NAME = os.environ.get("DEMO_NAME", "client")
INTERVAL = float(os.environ.get("DEMO_INTERVAL", "1"))


def targets() -> list[tuple[str, str]]:
    pairs = []
    for item in os.environ.get("DEMO_TARGETS", "").split(","):
        if item.strip():
            method, url = item.split(maxsplit=1)
            pairs.append((method.upper(), url.strip()))
    return pairs


def call(method: str, url: str) -> dict[str, object]:
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=3) as response:  # noqa: S310
            answer = json.loads(response.read() or b"{}")
            return {"status": response.status, "served_by": answer.get("service")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code}
    except (urllib.error.URLError, OSError) as exc:
        return {"status": 0, "error": str(exc)}


def main() -> None:
    plan = targets()
    while True:
        for method, url in plan:
            print(
                json.dumps({"from": NAME, "method": method, "url": url, **call(method, url)}),
                flush=True,
            )
        time.sleep(INTERVAL)


if __name__ == "__main__":
    main()
