#!/usr/bin/env python3
"""Load generator for hybridserve's gRPC API (hybridserve.v1.Inference/Generate).

  loadgen.py run --target HOST:PORT (--concurrency N | --rate R) [options]
  loadgen.py compare RUN.json... [--format markdown|tsv]

`run` sends streaming Generate requests in one of two modes:
  closed loop  --concurrency N: N streams, each sending its next request when the
               previous one finished (throughput at a fixed load);
  open loop    --rate R: requests arrive as a Poisson process of R per second,
               however many are in flight (latency at a fixed arrival rate).
Prompts are random token ids with lengths drawn from --prompt-len, and outputs
of --output-len tokens (ignore_eos, so the length is exact), or come from a JSONL
file (--prompts). --warmup requests run first and are not measured. It reports
client-side TTFT, inter-token and end-to-end percentiles, request and token
throughput, errors by gRPC status, and the cost per 1M tokens from the usage of
each final response (the server's attributed cost: device time split among a
step's sequences by tokens, times --cost-per-device-hour; idle time excluded).
--json writes the whole report; `compare` prints several reports as one table.

Python stubs are generated from proto/ at start (grpcio-tools) into a temporary
folder. tools/loadgen/run.sh runs this in a venv with the pinned packages.
Every run is bounded: --num-requests and/or --duration.
"""
import argparse
import asyncio
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402

DEFAULT_PROTO_DIR = HERE.parents[1] / "proto"


# ---------------------------------------------------------------------------
# Length distributions.

class Dist:
    """A distribution of positive integers, from a spec:
      N | fixed:N          always N
      uniform:A:B          uniform on [A, B]
      normal:MEAN:STD      rounded, at least 1
      lognormal:MEDIAN:SIGMA  rounded, at least 1 (long-tailed, like real prompts)
      exp:MEAN             exponential, rounded, at least 1
    """

    def __init__(self, spec):
        self.spec = spec
        parts = spec.split(":")
        kind, args = (("fixed", parts) if len(parts) == 1 else (parts[0], parts[1:]))
        try:
            vals = [float(a) for a in args]
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad distribution {spec!r}: numbers expected")
        want = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2, "exp": 1}
        if kind not in want or len(vals) != want[kind]:
            raise argparse.ArgumentTypeError(
                f"bad distribution {spec!r}: use N, fixed:N, uniform:A:B, normal:MEAN:STD, "
                f"lognormal:MEDIAN:SIGMA or exp:MEAN")
        if any(v < 0 for v in vals) or (kind in ("fixed", "exp") and vals[0] < 1):
            raise argparse.ArgumentTypeError(f"bad distribution {spec!r}: must be positive")
        if kind == "uniform" and vals[0] > vals[1]:
            raise argparse.ArgumentTypeError(f"bad distribution {spec!r}: A > B")
        self.kind, self.vals = kind, vals

    def sample(self, rng):
        k, v = self.kind, self.vals
        if k == "fixed":
            x = v[0]
        elif k == "uniform":
            x = rng.randint(int(v[0]), int(v[1]))
        elif k == "normal":
            x = rng.gauss(v[0], v[1])
        elif k == "lognormal":
            x = v[0] * math.exp(rng.gauss(0.0, v[1]))
        else:
            x = rng.expovariate(1.0 / v[0])
        return max(1, int(round(x)))

    def __repr__(self):
        return self.spec


# ---------------------------------------------------------------------------
# gRPC stubs, generated at start.

def load_stubs(proto_dir):
    try:
        import grpc  # noqa: F401
        from grpc_tools import protoc
    except ImportError as e:
        raise SystemExit(f"loadgen: {e}; install the packages of tools/loadgen/requirements.txt "
                         f"(tools/loadgen/run.sh does so in a venv)")
    out = Path(tempfile.mkdtemp(prefix="hs_loadgen_stubs_"))
    include = Path(protoc.__file__).parent / "_proto"
    proto = Path(proto_dir) / "hybridserve/v1/inference.proto"
    args = ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}",
            f"--grpc_python_out={out}", str(proto)]
    if protoc.main(args) != 0:
        raise SystemExit(f"loadgen: grpc_tools.protoc failed on {proto}")
    sys.path.insert(0, str(out))
    from hybridserve.v1 import inference_pb2, inference_pb2_grpc
    return inference_pb2, inference_pb2_grpc, out


# ---------------------------------------------------------------------------
# Requests.

def load_prompt_file(path):
    """JSONL: one object per line with "text" (or "prompt") or "token_ids", and
    optionally "max_new_tokens"."""
    items = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: {e}")
            text = obj.get("text", obj.get("prompt"))
            ids = obj.get("token_ids")
            if (text is None) == (ids is None):
                raise SystemExit(f"{path}:{n}: need exactly one of text/prompt and token_ids")
            items.append({"text": text, "token_ids": ids,
                          "max_new_tokens": obj.get("max_new_tokens")})
    if not items:
        raise SystemExit(f"{path}: no prompts")
    return items


class RequestFactory:
    """Makes GenerateRequests: random token-id prompts or prompts of a file, in
    turn. Deterministic for a --seed."""

    def __init__(self, pb, args, model_info):
        self.pb = pb
        self.args = args
        self.rng = random.Random(args.seed)
        self.model = model_info.name
        self.vocab = max(1, model_info.vocab_size)
        self.max_len = model_info.max_model_len or 0
        self.prompts = load_prompt_file(args.prompts) if args.prompts else None
        self.n = 0

    def make(self):
        a = self.args
        self.n += 1
        req = self.pb.GenerateRequest(model=self.model, request_id=f"loadgen-{a.seed}-{self.n}")
        if self.prompts is not None:
            item = self.prompts[(self.n - 1) % len(self.prompts)]
            if item["text"] is not None:
                req.text = item["text"]
            else:
                req.token_ids.ids.extend(item["token_ids"])
            out_len = item["max_new_tokens"] or a.output_len.sample(self.rng)
        else:
            plen = a.prompt_len.sample(self.rng)
            out_len = a.output_len.sample(self.rng)
            if self.max_len and plen + out_len > self.max_len:
                plen = max(1, self.max_len - out_len)
                out_len = min(out_len, self.max_len - plen)
            req.token_ids.ids.extend(self.rng.randrange(self.vocab) for _ in range(plen))
        req.stopping.max_new_tokens = max(1, out_len)
        req.stopping.ignore_eos = a.ignore_eos
        req.sampling.temperature = a.temperature
        req.sampling.seed = self.rng.getrandbits(63)
        return req


async def one_request(stub, pb, req, timeout_s):
    """Sends one Generate request and times its stream. Returns a record for
    report.summarize."""
    import grpc
    rec = {"ok": False, "status": "OK", "finish_reason": None, "ttft_s": None, "itl_s": [],
           "e2e_s": None, "completion_tokens": 0, "usage": None}
    t0 = time.perf_counter()
    last = None
    try:
        call = stub.Generate(req, timeout=timeout_s)
        async for resp in call:
            now = time.perf_counter()
            n = len(resp.token_ids)
            if n:
                if last is None:
                    rec["ttft_s"] = now - t0
                else:
                    # Several tokens in one response share its gap.
                    rec["itl_s"].extend([(now - last) / n] * n)
                last = now
                rec["completion_tokens"] += n
            if resp.finish_reason:
                rec["finish_reason"] = pb.FinishReason.Name(resp.finish_reason).replace(
                    "FINISH_REASON_", "").lower()
            if resp.HasField("usage"):
                u = resp.usage
                rec["usage"] = {"prompt_tokens": u.prompt_tokens,
                                "completion_tokens": u.completion_tokens,
                                "queue_seconds": u.queue_seconds,
                                "first_token_seconds": u.first_token_seconds,
                                "total_seconds": u.total_seconds,
                                "device_seconds": u.device_seconds, "cost_usd": u.cost_usd}
        rec["ok"] = True
    except grpc.aio.AioRpcError as e:
        rec["status"] = e.code().name
    rec["e2e_s"] = time.perf_counter() - t0
    return rec


class Progress:
    """tqdm when it is installed and stderr is a terminal (or --progress), else a
    line every few seconds."""

    def __init__(self, total, desc, mode):
        self.bar = None
        self.total = total
        self.desc = desc
        self.done = 0
        self.errors = 0
        self.last_print = time.monotonic()
        self.enabled = mode != "off"
        if mode == "off":
            return
        if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, unit="req", file=sys.stderr,
                                dynamic_ncols=True, leave=True)
            except ImportError:
                pass

    def update(self, rec):
        self.done += 1
        self.errors += 0 if rec["ok"] else 1
        if self.bar is not None:
            self.bar.update(1)
            if self.errors:
                self.bar.set_postfix(errors=self.errors)
        elif self.enabled and time.monotonic() - self.last_print >= 5:
            self.last_print = time.monotonic()
            total = f"/{self.total}" if self.total else ""
            print(f"{self.desc}: {self.done}{total} requests, {self.errors} errors",
                  file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()


async def run_closed(stub, pb, factory, concurrency, num_requests, duration_s, timeout_s,
                     progress):
    records = []
    deadline = time.monotonic() + duration_s if duration_s else None
    sent = 0

    async def worker():
        nonlocal sent
        while True:
            if num_requests is not None and sent >= num_requests:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            sent += 1
            rec = await one_request(stub, pb, factory.make(), timeout_s)
            records.append(rec)
            progress.update(rec)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return records, time.perf_counter() - t0


async def run_open(stub, pb, factory, rate, num_requests, duration_s, timeout_s, progress,
                   rng):
    records = []
    tasks = []
    t0 = time.perf_counter()
    next_at = t0
    deadline = t0 + duration_s if duration_s else None

    async def one(req):
        rec = await one_request(stub, pb, req, timeout_s)
        records.append(rec)
        progress.update(rec)

    while num_requests is None or len(tasks) < num_requests:
        next_at += rng.expovariate(rate)
        if deadline is not None and next_at >= deadline:
            break
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(factory.make())))
    await asyncio.gather(*tasks)
    return records, time.perf_counter() - t0


def model_info_dict(info):
    return {"name": info.name, "architecture": info.architecture, "family": info.family,
            "dtype": info.dtype, "device": info.device, "num_layers": info.num_layers,
            "num_attention_layers": info.num_attention_layers,
            "num_ssm_layers": info.num_ssm_layers, "vocab_size": info.vocab_size,
            "max_model_len": info.max_model_len,
            "kv_cache_bytes_per_token": info.kv_cache_bytes_per_token,
            "ssm_state_bytes_per_sequence": info.ssm_state_bytes_per_sequence}


async def run_async(args, pb, pb_grpc):
    import grpc
    options = [("grpc.max_receive_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        stub = pb_grpc.InferenceStub(channel)
        try:
            await asyncio.wait_for(channel.channel_ready(), args.connect_timeout)
            info = await stub.GetModel(pb.GetModelRequest(model=args.model or ""),
                                       timeout=args.connect_timeout)
        except (asyncio.TimeoutError, grpc.aio.AioRpcError) as e:
            detail = e.details() if isinstance(e, grpc.aio.AioRpcError) else "timed out"
            raise SystemExit(f"loadgen: cannot reach {args.target}: {detail}")
        factory = RequestFactory(pb, args, info)
        concurrency = args.concurrency or 1

        if args.warmup:
            progress = Progress(args.warmup, "warm-up", args.progress)
            await run_closed(stub, pb, factory, min(args.warmup, concurrency if not args.rate
                                                    else max(1, math.ceil(args.rate))),
                             args.warmup, None, args.request_timeout, progress)
            progress.close()

        progress = Progress(args.num_requests, "load", args.progress)
        if args.rate:
            records, wall = await run_open(stub, pb, factory, args.rate, args.num_requests,
                                           args.duration, args.request_timeout, progress,
                                           random.Random(args.seed + 1))
        else:
            records, wall = await run_closed(stub, pb, factory, concurrency, args.num_requests,
                                             args.duration, args.request_timeout, progress)
        progress.close()
    return {
        "version": 1,
        "label": args.label or info.name,
        "target": args.target,
        "model": model_info_dict(info),
        "config": {
            "mode": "open" if args.rate else "closed",
            "concurrency": None if args.rate else concurrency,
            "rate": args.rate,
            "num_requests": args.num_requests,
            "duration_s": args.duration,
            "warmup_requests": args.warmup,
            "prompt_len": None if args.prompts else repr(args.prompt_len),
            "output_len": repr(args.output_len),
            "prompts_file": args.prompts,
            "temperature": args.temperature,
            "ignore_eos": args.ignore_eos,
            "seed": args.seed,
        },
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "summary": report.summarize(records, wall),
    }


def cmd_run(args):
    if args.num_requests is None and args.duration is None:
        args.num_requests = 100
    if args.rate is not None and args.rate <= 0:
        raise SystemExit("loadgen: --rate must be > 0")
    if args.concurrency is not None and args.concurrency < 1:
        raise SystemExit("loadgen: --concurrency must be >= 1")
    pb, pb_grpc, stub_dir = load_stubs(args.proto_dir)
    try:
        result = asyncio.run(run_async(args, pb, pb_grpc))
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)
    text = report.text_report(result)
    print(text, end="", file=sys.stderr if args.json == "-" else sys.stdout)
    if args.json:
        data = json.dumps(result, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(data)
        else:
            Path(args.json).write_text(data)
    s = result["summary"]
    if args.max_error_rate is not None and s["requests"]:
        rate = (s["requests"] - s["ok"]) / s["requests"]
        if rate > args.max_error_rate:
            print(f"loadgen: error rate {rate:.3f} > --max-error-rate {args.max_error_rate}",
                  file=sys.stderr)
            return 1
    return 0


def cmd_compare(args):
    try:
        runs = report.load_runs(args.runs)
    except (OSError, ValueError) as e:
        raise SystemExit(f"loadgen compare: {e}")
    sys.stdout.write(report.compare_table(runs, args.format))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="loadgen", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    sub = ap.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="send load to a server and report")
    r.add_argument("--target", default="127.0.0.1:50051", help="HOST:PORT of the gRPC server")
    r.add_argument("--model", default="", help="served model name (default: the server's only)")
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--concurrency", type=int, help="closed loop: streams in flight (default 1)")
    mode.add_argument("--rate", type=float, help="open loop: Poisson arrivals per second")
    r.add_argument("--num-requests", type=int, help="measured requests (default 100 when "
                   "--duration is not given)")
    r.add_argument("--duration", type=float, help="stop sending after this many seconds")
    r.add_argument("--warmup", type=int, default=0, help="unmeasured requests sent first")
    r.add_argument("--prompt-len", type=Dist, default=Dist("128"),
                   help="prompt tokens: N, uniform:A:B, normal:M:S, lognormal:MED:SIGMA, exp:M "
                        "(default 128)")
    r.add_argument("--output-len", type=Dist, default=Dist("128"),
                   help="max_new_tokens, same forms (default 128)")
    r.add_argument("--prompts", help="JSONL prompt file: {\"text\"|\"prompt\"|\"token_ids\", "
                   "\"max_new_tokens\"?} per line, used in turn")
    r.add_argument("--temperature", type=float, default=0.0, help="sampling temperature")
    r.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
                   help="generate exactly max_new_tokens (default on)")
    r.add_argument("--seed", type=int, default=0, help="seed of lengths, prompts, arrivals")
    r.add_argument("--request-timeout", type=float, default=600.0, help="deadline per request, s")
    r.add_argument("--connect-timeout", type=float, default=30.0)
    r.add_argument("--label", help="name of this run in `compare` (default: the model name)")
    r.add_argument("--json", help="write the report as JSON to this file ('-' = stdout)")
    r.add_argument("--progress", choices=("auto", "bar", "lines", "off"), default="auto",
                   help="progress display on stderr (auto: a bar on a terminal)")
    r.add_argument("--max-error-rate", type=float,
                   help="exit 1 when the share of failed requests exceeds this")
    r.add_argument("--proto-dir", default=str(DEFAULT_PROTO_DIR), help=argparse.SUPPRESS)
    r.set_defaults(fn=cmd_run)

    c = sub.add_parser("compare", help="print several JSON reports as one table")
    c.add_argument("runs", nargs="+", help="reports written by run --json")
    c.add_argument("--format", choices=("markdown", "tsv"), default="markdown")
    c.set_defaults(fn=cmd_compare)

    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
