#!/usr/bin/env python3
"""Soak client for hybridserve (scripts/soak.sh starts the server and runs this).

  soak.py --target HOST:PORT --pid SERVER_PID --duration SECONDS [options]

Drives mixed load from --workers threads for --duration seconds: prompt lengths
from a few tokens to a few hundred, outputs from 1 to --max-output tokens,
priorities -2..2, greedy and seeded sampling, some logprobs and stop strings,
some requests cancelled by the client at a random point and some with short
deadlines. Expected outcomes: OK; CANCELLED for the client's own cancels;
DEADLINE_EXCEEDED for requests that set a deadline. Anything else is an
unexpected error.

It samples the server's resident memory (/proc/PID/status VmRSS) once warm-up
is over (--warmup seconds into the run) and after the load stops, and checks
that the free KV blocks and state slots (GetModel) are back at the counts read
before the load. Prints a report (and --json FILE); exit 0 when there are no
unexpected errors, the end RSS is within --rss-tolerance of the warm RSS and the
pools are back; 1 otherwise.
"""
import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from loadgen import load_stubs  # noqa: E402


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = {}      # (kind, status name) -> count
        self.unexpected = []    # first few unexpected errors
        self.tokens = 0
        self.requests = 0

    def add(self, kind, code_name, tokens, expected, details=""):
        with self.lock:
            key = f"{kind}:{code_name}"
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            self.requests += 1
            self.tokens += tokens
            if not expected:
                self.unexpected.append(f"{kind}: {code_name}: {details}")


def make_request(pb, rng, args, vocab):
    """One request and how the client treats it: 'normal', 'cancel' or 'deadline'."""
    roll = rng.random()
    kind = "cancel" if roll < 0.15 else "deadline" if roll < 0.25 else "normal"
    plen = min(int(rng.lognormvariate(3.5, 0.9)) + 1, args.max_prompt)
    req = pb.GenerateRequest()
    if rng.random() < 0.3:
        words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "ran", "far"]
        req.text = " ".join(rng.choice(words) for _ in range(max(1, plen // 2)))
    else:
        req.token_ids.ids.extend(rng.randrange(0, vocab) for _ in range(plen))
    req.stopping.max_new_tokens = rng.randint(1, args.max_output)
    req.stopping.ignore_eos = rng.random() < 0.7
    if rng.random() < 0.1:
        req.stopping.stop.append(rng.choice(["the", "\n", "ab"]))
    req.priority = rng.randint(-2, 2)
    if rng.random() < 0.5:
        req.sampling.temperature = 0.0
    else:
        req.sampling.temperature = 0.8
        req.sampling.top_p = 0.9
        req.sampling.seed = rng.randrange(1 << 31)
    if rng.random() < 0.1:
        req.logprobs = rng.randint(0, 5)
    req.request_id = f"soak-{rng.randrange(1 << 40):x}"
    return kind, req


def worker(idx, stub, pb, grpc, args, vocab, stop_at, stats):
    rng = random.Random(args.seed * 1000 + idx)
    while time.monotonic() < stop_at:
        kind, req = make_request(pb, rng, args, vocab)
        timeout = rng.uniform(0.05, 2.0) if kind == "deadline" else args.rpc_timeout
        cancel_after = rng.randint(0, 20)
        tokens = 0
        call = stub.Generate(req, timeout=timeout)
        try:
            if kind == "cancel" and cancel_after == 0:
                call.cancel()
            for r in call:
                tokens += len(r.token_ids)
                if kind == "cancel" and tokens >= cancel_after:
                    call.cancel()
                    break
            code = call.code()
        except grpc.RpcError as e:
            code = e.code()
        details = call.details() if code != grpc.StatusCode.OK else ""
        expected = (code == grpc.StatusCode.OK
                    or (kind == "cancel" and code == grpc.StatusCode.CANCELLED)
                    or (kind == "deadline" and code == grpc.StatusCode.DEADLINE_EXCEEDED))
        stats.add(kind, code.name, tokens, expected, details)


def get_load(stub, pb):
    return stub.GetModel(pb.GetModelRequest(), timeout=60).load


def wait_pools(stub, pb, load0, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        load = get_load(stub, pb)
        if (load.free_kv_blocks == load0.free_kv_blocks
                and load.free_state_slots == load0.free_state_slots
                and load.running_requests == 0 and load.waiting_requests == 0):
            return True, load
        if time.monotonic() > deadline:
            return False, load
        time.sleep(0.1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True)
    p.add_argument("--pid", type=int, required=True, help="the server's process id (for VmRSS)")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    p.add_argument("--warmup", type=float, default=60.0,
                   help="seconds into the run at which the warm RSS is read")
    p.add_argument("--workers", type=int, default=12)
    p.add_argument("--max-prompt", type=int, default=400)
    p.add_argument("--max-output", type=int, default=128)
    p.add_argument("--rss-tolerance", type=float, default=0.05)
    p.add_argument("--rpc-timeout", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="write the report here")
    p.add_argument("--proto-dir", default=str(HERE.parents[1] / "proto"))
    args = p.parse_args()

    pb, pb_grpc, _ = load_stubs(args.proto_dir)
    import grpc
    channel = grpc.insecure_channel(args.target)
    stub = pb_grpc.InferenceStub(channel)
    info = stub.GetModel(pb.GetModelRequest(), timeout=60)
    load0 = info.load
    vocab = min(info.vocab_size, 256 + 10) if info.vocab_size > 0 else 256
    print(f"soak: {info.name} ({info.architecture}), {args.workers} workers for "
          f"{args.duration:.0f} s; initial free blocks {load0.free_kv_blocks}/"
          f"{load0.total_kv_blocks}, slots {load0.free_state_slots}/{load0.total_state_slots}",
          flush=True)

    stats = Stats()
    t0 = time.monotonic()
    stop_at = t0 + args.duration
    threads = [threading.Thread(target=worker, args=(i, stub, pb, grpc, args, vocab, stop_at,
                                                    stats), daemon=True)
               for i in range(args.workers)]
    for t in threads:
        t.start()
    rss_warm = None
    next_print = t0 + 60
    while any(t.is_alive() for t in threads):
        now = time.monotonic()
        if rss_warm is None and now - t0 >= min(args.warmup, args.duration / 2):
            rss_warm = rss_kib(args.pid)
            print(f"soak: warm RSS {rss_warm} KiB after {now - t0:.0f} s "
                  f"({stats.requests} requests)", flush=True)
        if now >= next_print:
            print(f"soak: {now - t0:.0f} s, {stats.requests} requests, {stats.tokens} tokens, "
                  f"RSS {rss_kib(args.pid)} KiB, unexpected {len(stats.unexpected)}", flush=True)
            next_print += 60
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    pools_ok, load_end = wait_pools(stub, pb, load0, 120)
    rss_end = rss_kib(args.pid)
    if rss_warm is None:
        rss_warm = rss_end
    growth = (rss_end - rss_warm) / rss_warm
    rss_ok = abs(growth) <= args.rss_tolerance
    ok = not stats.unexpected and rss_ok and pools_ok
    report = {
        "duration_s": round(elapsed, 1),
        "requests": stats.requests,
        "tokens": stats.tokens,
        "outcomes": dict(sorted(stats.outcomes.items())),
        "unexpected_errors": len(stats.unexpected),
        "unexpected_examples": stats.unexpected[:10],
        "rss_warm_kib": rss_warm,
        "rss_end_kib": rss_end,
        "rss_growth": round(growth, 4),
        "rss_ok": rss_ok,
        "free_kv_blocks": [load_end.free_kv_blocks, load0.free_kv_blocks],
        "free_state_slots": [load_end.free_state_slots, load0.free_state_slots],
        "pools_ok": pools_ok,
        "pass": ok,
    }
    print(json.dumps(report, indent=2))
    print(f"soak: {'PASS' if ok else 'FAIL'}: {stats.requests} requests ({stats.tokens} tokens) in "
          f"{elapsed:.0f} s, {len(stats.unexpected)} unexpected errors, RSS warm {rss_warm} KiB "
          f"-> end {rss_end} KiB ({100 * growth:+.2f}%, limit ±{100 * args.rss_tolerance:.0f}%), "
          f"free blocks {load_end.free_kv_blocks}/{load0.free_kv_blocks}, free slots "
          f"{load_end.free_state_slots}/{load0.free_state_slots}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    channel.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
