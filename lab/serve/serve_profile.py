"""Where a /predict request's time goes in `mnistlab serve` (docs/inference.md, "Under load").

    python lab/serve/serve_profile.py                      # the code on sys.path
    PYTHONPATH=/path/to/old/src python lab/serve/serve_profile.py

1. Each preprocessing stage and the model call, alone in one thread (median of repeats), for the
   drawing and the photo that lab/serve/load_serve.py sends; then the drawing's decode and
   preprocessing in 1 and in 2 threads at once (does it get past the GIL?).
2. The server in this process, its handler's stages wrapped in timers (wall time, and CPU time
   of the thread), under lab/serve/load_serve.py's 16 keep-alive clients x 60 drawings, with
   torch.set_num_threads(1) as `mnistlab serve` sets it from commit b839518 on (pass
   --torch-threads 2 for the earlier default). Stages the served code does not have are left
   out; work done in worker processes shows as the wait for them.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab" / "serve"))

import load_serve  # noqa: E402

from mnistlab import pretrained  # noqa: E402
from mnistlab.inference import preprocess as pp  # noqa: E402
from mnistlab.inference import server as srv  # noqa: E402
from mnistlab.inference.predict import predict  # noqa: E402


def median_ms(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def stages(model, name: str, body: bytes) -> None:
    repeats = 200 if name == "drawing" else 50
    image = pp.open_image(body, max_pixels=srv.MAX_PIXELS)
    gray = pp.to_gray(pp._reduce(image))
    pixels = pp.preprocess_image(body, max_pixels=srv.MAX_PIXELS)
    answer = {**predict(model, pixels)[0].as_dict(), "image28": pixels.reshape(-1).tolist()}
    calls = {
        "decode (open_image)": lambda: pp.open_image(body, max_pixels=srv.MAX_PIXELS),
        "  grayscale (to_gray)": lambda: pp.to_gray(pp._reduce(image)),
        "  ink_map": lambda: pp.ink_map(gray),
        "preprocess of the decoded image (all)": lambda: pp.preprocess(image),
        "preprocess_image (decode + preprocess)": lambda: pp.preprocess_image(
            body, max_pixels=srv.MAX_PIXELS
        ),
        "predict (batch of 1)": lambda: predict(model, pixels),
        "json.dumps of the answer": lambda: json.dumps(answer).encode(),
    }
    print(f"  {name} ({len(body):,} bytes)")
    for stage, call in calls.items():
        print(f"    {stage:42s} {median_ms(call, repeats):8.3f}")


def alone(model) -> None:
    print(f"1. alone, one thread (torch threads {torch.get_num_threads()}), median ms")
    stages(model, "drawing", load_serve.drawing_png())
    stages(model, "photo", load_serve.photo_png())
    drawing = load_serve.drawing_png()
    for threads in (1, 2, 1, 2):
        rate = in_threads(drawing, threads)
        print(f"  drawing, preprocess_image in {threads} thread(s) at once: {rate:,.0f} images/s")


def in_threads(body: bytes, threads: int, total: int = 400) -> float:
    """Images per second of preprocess_image(body) in `threads` threads at once."""

    def work() -> None:
        for _ in range(total // threads):
            pp.preprocess_image(body, max_pixels=srv.MAX_PIXELS)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return total / (time.perf_counter() - started)


def under_load(model, requests: int) -> None:
    stats: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    lock = threading.Lock()

    def timed(name, function):
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                with lock:
                    stats[name].append((time.perf_counter() - wall, time.thread_time() - cpu))

        return wrapper

    handler = srv._Handler
    wrapped = [
        (handler, "handle_one_request", "one request, incl. waiting for it to arrive"),
        (handler, "parse_request", "  request line and headers"),
        (handler, "do_POST", "  do_POST"),
        (handler, "_read_body", "    read the body"),
        (srv, "preprocess_image", "    preprocess_image in this thread"),
        (getattr(srv, "_Preprocessing", None), "__call__", "    preprocess in a worker, waited"),
        (srv, "predict", "    predict (model lock held)"),
        (handler, "_json", "    JSON answer, sent"),
    ]
    for owner, attribute, label in wrapped:
        if owner is not None and hasattr(owner, attribute):
            setattr(owner, attribute, timed(label, getattr(owner, attribute)))
    server = srv.make_server(model, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    command = [sys.executable, str(ROOT / "lab" / "serve" / "load_serve.py"), "--url", url]
    command += ["--image", "drawing", "--requests", str(requests)]
    own_before = time.process_time()
    everything_before = load_serve.cpu_seconds(os.getpid()) or 0.0
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    own = time.process_time() - own_before
    everything = (load_serve.cpu_seconds(os.getpid()) or 0.0) - everything_before
    server.shutdown()
    server.server_close()
    print(f"2. under load, in-process server, torch threads {torch.get_num_threads()}")
    print("   " + out.stdout.strip().replace("\n", "\n   "))
    count = len(stats["  do_POST"])
    print(
        f"   this process {1000 * own / count:.2f} ms CPU per request, its worker processes "
        f"{1000 * (everything - own) / count:.2f} ms (warm-up requests included)"
    )
    print(f"   {'stage':48s} {'calls':>6s} {'wall p50':>9s} {'wall mean':>9s} {'CPU mean':>9s} ms")
    for name, values in stats.items():
        walls = sorted(wall for wall, _ in values)
        cpus = [cpu for _, cpu in values]
        print(
            f"   {name:48s} {len(values):6d} {1000 * walls[len(walls) // 2]:9.3f} "
            f"{1000 * statistics.fmean(walls):9.3f} {1000 * statistics.fmean(cpus):9.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--requests", type=int, default=60, help="per client (16 clients)")
    args = parser.parse_args()
    print(f"served code: {srv.__file__}")
    model, _ = pretrained.load("default")
    model.eval()
    torch.set_num_threads(args.torch_threads)
    alone(model)
    under_load(model, args.requests)


if __name__ == "__main__":
    main()
