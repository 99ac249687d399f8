"""The triage desk under load on loopback, beside in-process `Matcher.match` on the same requests.

Bounded (stops by itself): for each server mode, --clients concurrent clients each send --per-client
`POST /api/match` requests one after another; then one client sends the same requests one at a time
(warm latency). Reported per mode: p50/p95 latency, throughput, errors, how many requests shared an
encoder call, and the server's peak RSS. Beside it, in the same run on the same requests: one-at-a-time
`Matcher.match` latency in a separate process, the peak RSS and wall time of one `matcher match
--local` process (cold: what each request cost before the desk), and the wall time of `matcher match
--json` finding the running desk by its server file (WORKDIR/desk.json) and answering through it.

Server modes: `off` (max_batch 1: no micro-batching, one request per encoder call), `queued`
(window 0: requests already waiting share a call, none waits), and `window N ms`; batching modes
join at most --max-batch requests (default 4, the desk's default).

    python bench/desk_load.py                       # hybrid config, 20 clients x 10 requests
    python bench/desk_load.py --workdir /tmp/dl     # keep (and reuse) the index there
    python bench/desk_load.py --smoke               # CI: fixture catalog, hashing encoder, no timing
    python bench/desk_load.py --batch-ab /tmp/dl/bench.toml /tmp/dl/requests.jsonl   # encoder calls only

Everything binds 127.0.0.1 only; the index is built into the work dir (nothing under models/ is
written; the converted e5 model is read from models/ when present). Requests are the texts of
data/requests/train.jsonl in file order (the smoke run uses tests/fixtures/requests.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def post(url: str, body: dict, timeout: float = 120) -> dict:
    data = json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method="POST")
    with OPENER.open(req, timeout=timeout) as response:
        return json.loads(response.read())


def get(url: str) -> dict:
    with OPENER.open(url, timeout=30) as response:
        return json.loads(response.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "matcher", *args]


def env() -> dict[str, str]:
    out = {**os.environ, "PYTHONPATH": str(ROOT)}
    out.pop("MATCHER_TOKEN", None)
    return out


def timed_child(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one child process (rusage of that child only)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, out


def in_process(config_file: str, requests_file: str, n: int) -> None:
    """Child mode: one-at-a-time `Matcher.match` latency on the first `n` requests (after 3 warm-ups)."""
    from matcher.config import load_config
    from matcher.engine import Matcher

    texts = [json.loads(line)["text"] for line in Path(requests_file).read_text().splitlines()][:n]
    matcher = Matcher.from_config(load_config(config_file))
    for text in texts[:3]:
        matcher.match(text)
    latencies = []
    for text in texts:
        start = time.perf_counter()
        matcher.match(text)
        latencies.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"latencies_ms": latencies}))


def batch_ab(config_file: str, requests_file: str, sizes: tuple[int, ...] = (4, 16), rounds: int = 4) -> None:
    """The encoder-call effect alone: `match` in a loop vs one `match_batch` over the same requests,
    alternating, in one process (no HTTP). Prints median ms per request for each call size."""
    from matcher.config import load_config
    from matcher.engine import Matcher
    from matcher.schema import Request

    texts = [json.loads(line)["text"] for line in Path(requests_file).read_text().splitlines()]
    requests = [Request(id=f"r{i}", text=t) for i, t in enumerate(texts)]
    matcher = Matcher.from_config(load_config(config_file))
    for r in requests[:3]:
        matcher.match(r)
    print(f"{'per call':>8} {'one ms/req':>10} {'batch ms/req':>12} {'ratio':>6}")
    for size in sizes:
        one, batch = [], []
        for k in range(rounds):
            chunk = requests[k * size : (k + 1) * size]
            start = time.perf_counter()
            for r in chunk:
                matcher.match(r)
            one.append((time.perf_counter() - start) * 1000 / size)
            start = time.perf_counter()
            matcher.match_batch(chunk)
            batch.append((time.perf_counter() - start) * 1000 / size)
        a, b = statistics.median(one), statistics.median(batch)
        print(f"{size:>8} {a:>10.0f} {b:>12.0f} {a / b:>6.2f}")
    print(f"loadavg {os.getloadavg()[0]:.2f}")


def proc_status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_mode(args, label: str, window_ms: float, max_batch: int, texts: list[str]) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work = Path(args.workdir) / f"desk-{label.replace(' ', '')}"
    command = cli(
        "serve", "--port", str(port), "-C", args.config_file,
        "--window-ms", str(window_ms), "--max-batch", str(max_batch),
        "--feedback-db", str(work / "feedback.sqlite3"), "--work-dir", str(work), "--runs-dir", str(work),
    )  # fmt: skip
    log = open(Path(args.workdir) / f"serve-{port}.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(command, cwd=ROOT, env=env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start; see {log.name}")
            try:
                if get(url + "/healthz")["status"] == "ok":
                    break
            except OSError:
                time.sleep(0.3)
        for text in texts[:3]:
            post(url + "/api/match", {"text": text})
        before = get(url + "/healthz")["batcher"]

        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def client(k: int) -> None:
            for j in range(args.per_client):
                text = texts[(k * args.per_client + j) % len(texts)]
                start = time.perf_counter()
                try:
                    data = post(url + "/api/match", {"text": text})
                    ok = bool(data.get("recommendations") is not None)
                except Exception as exc:  # counted, never hidden
                    ok, data = False, {"error": repr(exc)}
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    (latencies.append(elapsed) if ok else errors.append(str(data)[:200]))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        after = get(url + "/healthz")["batcher"]
        calls = after["calls"] - before["calls"]
        served = after["requests"] - before["requests"]

        sequential = []
        for text in texts[: args.sequential]:
            t0 = time.perf_counter()
            post(url + "/api/match", {"text": text})
            sequential.append((time.perf_counter() - t0) * 1000)

        through = []
        for text in texts[: args.cli_runs]:
            seconds, _, out = timed_child(cli("match", "-C", args.config_file, "--json", text))
            assert json.loads(out)["recommendations"] is not None
            through.append(seconds)
        row = {
            "mode": label,
            "window_ms": window_ms,
            "max_batch": max_batch,
            "requests": len(latencies) + len(errors),
            "errors": len(errors),
            "error_examples": errors[:3],
            "p50_ms": round(percentile(latencies, 0.5), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1),
            "throughput_rps": round(len(latencies) / wall, 2),
            "mean_per_call": round(served / calls, 2) if calls else 0.0,
            "sequential_p50_ms": round(percentile(sequential, 0.5), 1),
            "server_rss_mb": round(proc_status_mb(server.pid, "VmRSS"), 1),
            "server_peak_rss_mb": round(proc_status_mb(server.pid, "VmHWM"), 1),
            "cli_through_desk_s": round(statistics.median(through), 3) if through else None,
            "loadavg_1min": round(os.getloadavg()[0], 2),
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    return row


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="hybrid")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--sequential", type=int, default=30, help="One-at-a-time API requests per mode.")
    parser.add_argument("--cli-runs", type=int, default=3, help="`matcher match --server` runs per mode.")
    parser.add_argument("--windows", default="off,0,2,5", help="Modes: off (no batching) and window ms.")
    parser.add_argument("--max-batch", type=int, default=4, help="Most requests per call in batching modes.")
    parser.add_argument("--workdir", help="Keep the index here to reuse it (default: new temp dir).")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", dest="json_out", help="Also write the rows to this JSON file.")
    parser.add_argument("--in-process", nargs=3, metavar=("CONFIG", "REQUESTS", "N"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--batch-ab",
        nargs=2,
        metavar=("CONFIG", "REQUESTS"),
        help="Only compare `match` in a loop with `match_batch` (4 and 16 per call) in this process.",
    )
    args = parser.parse_args()
    if args.batch_ab:
        batch_ab(*args.batch_ab)
        return
    if args.in_process:
        in_process(args.in_process[0], args.in_process[1], int(args.in_process[2]))
        return

    from matcher.config import load_config

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-desk-"))
    workdir.mkdir(parents=True, exist_ok=True)
    args.workdir = str(workdir)
    overrides: dict = {"index_dir": str(workdir / "index"), "model_dir": str(workdir)}
    source = ROOT / "data/requests/train.jsonl"
    if args.smoke:
        args.clients, args.per_client, args.sequential, args.cli_runs = 4, 3, 3, 1
        args.windows = "off,2"
        source = ROOT / "tests/fixtures/requests.jsonl"
        overrides |= {
            "catalog_dir": "tests/fixtures/catalog",
            "retrievers": ["hashing", "bm25"],
            "retriever_weights": [1.0, 1.0],
        }
    elif (ROOT / "models/e5-small/modules.json").is_file():
        overrides["e5_model"] = str(ROOT / "models/e5-small")
    config = load_config(args.config, **overrides)
    args.config_file = str(workdir / "bench.toml")
    config.save(args.config_file)
    texts = [
        json.loads(line)["text"] for line in source.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    n = args.clients * args.per_client
    texts = (texts * (n // len(texts) + 1))[:n]
    requests_file = workdir / "requests.jsonl"
    requests_file.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))

    subprocess.run(cli("index", "build", "-C", args.config_file), cwd=ROOT, env=env(), check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    cold_s, cold_rss, _ = timed_child(cli("match", "--local", "-C", args.config_file, "--json", texts[0]))
    seq_n = max(args.sequential, 3)
    _, inproc_rss, out = timed_child(
        [sys.executable, __file__, "--in-process", args.config_file, str(requests_file), str(seq_n)]
    )
    inproc = json.loads(out.strip().splitlines()[-1])["latencies_ms"]
    inproc_p50 = percentile(inproc, 0.5)

    rows = []
    for mode in args.windows.split(","):
        label, window, max_batch = ("off", 0.0, 1) if mode == "off" else (
            "queued" if float(mode) == 0 else f"window {mode} ms", float(mode), args.max_batch)  # fmt: skip
        rows.append(run_mode(args, label, window, max_batch, texts))

    load = os.getloadavg()[0]
    print(
        f"cpu: {cpu_model()} ({os.cpu_count()} logical CPUs); config {args.config}; "
        f"{args.clients} clients x {args.per_client} requests; loadavg now {load:.2f}"
    )
    print(f"in-process Matcher.match one at a time ({len(inproc)} requests): p50 {inproc_p50:.1f} ms, "
          f"p95 {percentile(inproc, 0.95):.1f} ms, {1000 / statistics.mean(inproc):.2f} req/s, "
          f"peak RSS {inproc_rss:.0f} MB")  # fmt: skip
    print(f"one `matcher match --local` process: {cold_s:.2f} s wall, peak RSS {cold_rss:.0f} MB")
    head = (
        f"{'mode':14} {'req':>4} {'err':>3} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} {'per call':>8} "
        f"{'seq p50':>8} {'x inproc':>8} {'RSS MB':>7} {'x match':>7} {'cli s':>6} {'load':>5}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['mode']:14} {r['requests']:>4} {r['errors']:>3} {r['p50_ms']:>8} {r['p95_ms']:>8} "
            f"{r['throughput_rps']:>7} {r['mean_per_call']:>8} {r['sequential_p50_ms']:>8} "
            f"{r['sequential_p50_ms'] / inproc_p50:>8.2f} {r['server_peak_rss_mb']:>7} "
            f"{r['server_peak_rss_mb'] / cold_rss:>7.2f} {r['cli_through_desk_s']:>6} {r['loadavg_1min']:>5}"
        )
    summary = {
        "cpu": cpu_model(),
        "config": args.config,
        "clients": args.clients,
        "per_client": args.per_client,
        "in_process": {
            "n": len(inproc),
            "p50_ms": round(inproc_p50, 1),
            "p95_ms": round(percentile(inproc, 0.95), 1),
            "peak_rss_mb": round(inproc_rss, 1),
        },
        "matcher_match_process": {"wall_s": round(cold_s, 2), "peak_rss_mb": round(cold_rss, 1)},
        "modes": rows,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    if args.smoke:
        assert all(r["errors"] == 0 and r["requests"] == 12 for r in rows), rows
        assert rows[0]["mean_per_call"] == 1.0, rows[0]
        print("smoke ok")


if __name__ == "__main__":
    main()
