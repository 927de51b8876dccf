"""Load test for `mnistlab serve`: concurrent clients POST one PNG to /predict, again and again.

    python lab/serve/load_serve.py                      # starts `mnistlab serve --port 0` itself
    python lab/serve/load_serve.py --url http://127.0.0.1:8000/ --image my-digit.png --json

The client is the standard library only (one thread per client, `http.client`); PIL and numpy
only make the test images. By default each
client keeps its HTTP/1.1 connection open and reuses it, as a browser's `fetch` does for the
draw-a-digit page; `--new-connections` opens one connection per request, as a `curl` per
request would. Without `--image`, two PNGs made here with PIL are sent in turn: `drawing`
(280x280, a black pen digit on white, what the page's canvas sends) and `photo` (640x480 RGB, a
dark digit on unevenly lit, noisy paper). Each run prints requests/s, latency percentiles
(p50/p90/p99/max, from sending a request to having read its whole answer), errors (a status
other than 200, a connection error, an answer that is not the JSON of a prediction), the digits
answered, the load average (`os.getloadavg`) before and after, and CPU time per request: this
script's, the server's (with its child processes, when this script started it) and how many of
the machine's cores were busy (Linux): client and server share the cores on one machine.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------
# the images


def _seven(draw: ImageDraw.ImageDraw, scale: float, left: float, top: float, **style) -> None:
    points = [(left + x * scale, top + y * scale) for x, y in ((45, 50), (215, 50), (125, 245))]
    draw.line(points, joint="curve", **style)
    radius = style["width"] / 2  # round caps, as the page's pen draws
    for x, y in (points[0], points[-1]):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=style["fill"])


def drawing_png() -> bytes:
    """280x280 RGBA, an antialiased 18 px black pen on white: what the page's canvas sends."""
    big = Image.new("RGBA", (1120, 1120), (255, 255, 255, 255))
    _seven(ImageDraw.Draw(big), 4.0, 0, 0, fill=(0, 0, 0, 255), width=72)
    return _png(big.resize((280, 280), Image.Resampling.LANCZOS))


def photo_png() -> bytes:
    """640x480 RGB: a dark marker digit on paper with a lighting gradient and sensor noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    light = 200 + 40 * (xx / 640) - 25 * (yy / 480)
    paper = np.stack([light, light * 0.97, light * 0.9], axis=-1)
    image = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8), "RGB")
    _seven(ImageDraw.Draw(image), 1.4, 150, 40, fill=(40, 35, 60), width=22)
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32)
    pixels += rng.normal(0, 6, pixels.shape)
    return _png(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


BUILT_IN = {"drawing": drawing_png, "photo": photo_png}


# ---------------------------------------------------------------------------------------------
# the server


def start_server(extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """`mnistlab serve --port 0` in a child process, and the URL it prints."""
    command = [sys.executable, "-m", "mnistlab.cli", "serve", "--port", "0", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()  # "serving ... on http://127.0.0.1:PORT/ (Ctrl-C to stop)"
    found = re.search(r" on (http://\S+/) ", line)
    if not found:
        process.kill()
        raise SystemExit(f"load_serve: the server did not start: {line.strip()!r}")
    return process, found.group(1)


def stop_server(process: subprocess.Popen[str]) -> None:
    """Stop it as Ctrl-C does (it then stops its worker processes too); kill it after 10 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_healthy(url: str, seconds: float = 60.0) -> None:
    host, port, _ = _split(url)
    deadline = time.monotonic() + seconds
    while True:
        try:
            connection = http.client.HTTPConnection(host, port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"load_serve: {url} did not answer /health in {seconds:.0f} s")
        time.sleep(0.2)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its live descendants (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:  # a thread that has just ended
            continue
        total += sum(cpu_seconds(int(child)) or 0.0 for child in children)
    return total


def busy_cores() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine so far (Linux /proc/stat), or None."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK"), sum(fields) / os.sysconf("SC_CLK_TCK")


def _split(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80, parts.path.rstrip("/") + "/predict"


# ---------------------------------------------------------------------------------------------
# the load


@dataclass
class Result:
    image: str
    image_bytes: int
    image_size: str
    clients: int
    requests_per_client: int
    keep_alive: bool
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    requests_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    answers: dict[str, int] = field(default_factory=dict)
    error_examples: list[str] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    server_cpu_ms_per_request: float | None = None
    client_cpu_ms_per_request: float = 0.0
    machine_busy_cores: float | None = None


def _client(
    url: str, body: bytes, count: int, keep_alive: bool, start: threading.Barrier, out: dict
) -> None:
    host, port, path = _split(url)
    headers = {"Content-Type": "image/png"}
    if not keep_alive:
        headers["Connection"] = "close"
    latencies, answers, errors = [], Counter(), []
    connection = None
    start.wait()
    for _ in range(count):
        began = time.perf_counter()
        try:
            if connection is None:
                connection = http.client.HTTPConnection(host, port, timeout=60)
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}: {answer[:200]!r}")
            digit = json.loads(answer)["digit"]
            latencies.append(time.perf_counter() - began)
            answers[str(digit)] += 1
        except Exception as error:  # noqa: BLE001 - every failure is counted, none stops the run
            errors.append(f"{type(error).__name__}: {error}")
            if connection is not None:
                connection.close()
            connection = None
            continue
        if not keep_alive or response.will_close:
            connection.close()
            connection = None
    if connection is not None:
        connection.close()
    out.update(latencies=latencies, answers=answers, errors=errors)


def run_load(
    url: str,
    name: str,
    body: bytes,
    clients: int,
    requests: int,
    keep_alive: bool,
    server_pid: int | None,
) -> Result:
    with Image.open(io.BytesIO(body)) as image:
        size = f"{image.width}x{image.height} {image.mode}"
    result = Result(name, len(body), size, clients, requests, keep_alive)
    start = threading.Barrier(clients + 1)
    outs: list[dict] = [{} for _ in range(clients)]
    threads = [
        threading.Thread(target=_client, args=(url, body, requests, keep_alive, start, out))
        for out in outs
    ]
    for thread in threads:
        thread.start()
    result.load_before = os.getloadavg()
    cpu_before = cpu_seconds(server_pid) if server_pid else None
    client_before = time.process_time()
    machine_before = busy_cores()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    cpu_after = cpu_seconds(server_pid) if server_pid else None
    client_cpu = time.process_time() - client_before
    machine_after = busy_cores()
    result.load_after = os.getloadavg()
    latencies = sorted(t for out in outs for t in out["latencies"])
    answers: Counter = sum((out["answers"] for out in outs), Counter())
    errors = [e for out in outs for e in out["errors"]]
    result.requests = len(latencies) + len(errors)
    result.errors = len(errors)
    result.error_examples = sorted(set(errors))[:5]
    result.answers = dict(sorted(answers.items()))
    result.requests_per_s = len(latencies) / result.seconds
    if latencies:
        result.latency_ms = {
            "p50": _percentile(latencies, 50),
            "p90": _percentile(latencies, 90),
            "p99": _percentile(latencies, 99),
            "max": 1000 * latencies[-1],
            "mean": 1000 * statistics.fmean(latencies),
        }
    if machine_before and machine_after:
        result.machine_busy_cores = (machine_after[0] - machine_before[0]) / result.seconds
    if result.requests:
        result.client_cpu_ms_per_request = 1000 * client_cpu / result.requests
    if cpu_before is not None and cpu_after is not None and result.requests:
        result.server_cpu_ms_per_request = 1000 * (cpu_after - cpu_before) / result.requests
    return result


def _percentile(sorted_values: list[float], q: float) -> float:
    # nearest rank: the smallest value with at least q% of the values at or below it
    rank = max(1, -(-len(sorted_values) * q // 100))
    return 1000 * sorted_values[int(rank) - 1]


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src/mnistlab/inference"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (src/mnistlab/inference has uncommitted changes)" if dirty else "")


def _describe(result: Result) -> str:
    lat = result.latency_ms
    load = " ".join(f"{x:.2f}" for x in result.load_before)
    load_after = " ".join(f"{x:.2f}" for x in result.load_after)
    lines = [
        f"image {result.image} ({result.image_size} PNG, {result.image_bytes:,} bytes): "
        f"{result.requests:,} requests in {result.seconds:.2f} s",
        f"  {result.requests_per_s:,.1f} requests/s   errors {result.errors}   "
        f"answers {result.answers}",
    ]
    if lat:
        lines.append(
            f"  latency ms: p50 {lat['p50']:.1f}  p90 {lat['p90']:.1f}  p99 {lat['p99']:.1f}  "
            f"max {lat['max']:.1f}  mean {lat['mean']:.1f}"
        )
    cpu = f"  CPU time per request: client (this script) {result.client_cpu_ms_per_request:.2f} ms"
    if result.server_cpu_ms_per_request is not None:
        cpu += f", server {result.server_cpu_ms_per_request:.2f} ms"
    if result.machine_busy_cores is not None:
        cpu += f"; whole machine busy {result.machine_busy_cores:.2f} of {os.cpu_count()} cores"
    lines.append(cpu)
    lines.append(f"  load average before: {load}   after: {load_after}")
    lines.extend(f"  error: {example}" for example in result.error_examples)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start `mnistlab serve`)")
    parser.add_argument(
        "--image",
        action="append",
        metavar="drawing|photo|PATH",
        help="what to send; repeat for several runs (default: drawing, then photo)",
    )
    parser.add_argument("--clients", type=int, default=16, help="client threads (default: 16)")
    parser.add_argument(
        "--requests", type=int, default=125, help="requests per client (default: 125)"
    )
    parser.add_argument(
        "--new-connections",
        action="store_true",
        help="a new connection per request (default: one keep-alive connection per client)",
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="requests sent before timing (default: 20)"
    )
    parser.add_argument(
        "--serve-args",
        default="",
        help="extra arguments for the started `mnistlab serve`, e.g. '--pretrained r8k'",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be at least 1")

    images = []
    for item in args.image or ["drawing", "photo"]:
        body = BUILT_IN[item]() if item in BUILT_IN else Path(item).read_bytes()
        images.append((item, body))

    process = None
    if args.url:
        url = args.url if args.url.endswith("/") else args.url + "/"
    else:
        process, url = start_server(shlex.split(args.serve_args))
    try:
        wait_healthy(url)
        results = []
        for name, body in images:
            if args.warmup:
                run_load(url, name, body, 1, args.warmup, not args.new_connections, None)
            results.append(
                run_load(
                    url,
                    name,
                    body,
                    args.clients,
                    args.requests,
                    not args.new_connections,
                    process.pid if process else None,
                )
            )
    finally:
        if process is not None:
            stop_server(process)

    header = {
        "url": url,
        "server": "started by this script: mnistlab serve --port 0 " + args.serve_args
        if process
        else "given by --url",
        "commit": _git_commit(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "connections": "new per request" if args.new_connections else "keep-alive per client",
    }
    if args.json:
        print(json.dumps({**header, "results": [asdict(r) for r in results]}, indent=2))
    else:
        print(
            f"mnistlab serve load test: {args.clients} clients x {args.requests} requests, "
            f"{header['connections']}, {url} ({header['server'].strip()})"
        )
        print(
            f"this checkout: commit {header['commit']}; {header['cpus']} CPUs, Python "
            f"{header['python']}, {args.warmup} warm-up requests before each run"
        )
        for result in results:
            print(_describe(result))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
