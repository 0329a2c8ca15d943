"""Latency, throughput and memory of the embedded OET REST server.

    .venv/bin/python bench/bench_embedded.py                  # starts its own server
    .venv/bin/python bench/bench_embedded.py --url http://127.0.0.1:5000/api/v1.0 --pid 1234

Measures, against one server on this machine:

1. create latency: ``POST /procedures`` of a no-op script until the answer says CREATED;
2. start -> COMPLETED: from sending ``PUT {"state": "RUNNING"}`` to receiving the
   ``procedure.lifecycle.complete`` event on the SSE stream (and the server's own
   ``COMPLETED - RUNNING`` from the procedure's history);
3. script event -> SSE client: ``scripting.publish`` in ``run()`` until the event
   arrives on the stream, against the same wall clock;
4. ``GET /procedures`` requests per second from concurrent keep-alive connections;
5. the server's resident memory after the workload, and its peak.

It is a benchmark, not a test: it exits 0 whatever the figures unless ``--strict``.
Beside the targets it reports figures that explain them (the server's own view of
each latency, CPU per request, runner memory) and checks the stream keeps its
promises under load (no lost or reordered events). ``wire.py`` is the thin client,
``local_server.py`` the server process and its ``/proc`` figures.
"""

import argparse
import asyncio
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import floors
from fanout import fanout
from local_server import cpu_seconds, memory_of, own_server, runner_memory
from wire import BenchError, Connection, Endpoint, EventStream, Received, read_response, wait_ready

REPO = Path(__file__).resolve().parent.parent
LISTED = "request.procedure.list"

NOOP_SCRIPT = '''"""Does nothing: what is measured is the server's own overhead."""


def init(*args, **kwargs):
    pass


def run(*args, **kwargs):
    pass
'''

TICKER_SCRIPT = '''"""Publishes ``count`` events stamped with their send time."""

import time

from oet import scripting


def init(*args, **kwargs):
    pass


def run(count=100, spacing=0.005):
    for n in range(count):
        scripting.publish("bench.tick", n=n, sent=time.time())
        time.sleep(spacing)
'''


# -- the measurements ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Load:
    """What one burst of ``GET /procedures`` achieved, and the CPU it cost."""

    requests: int
    failed: int
    seconds: float
    server_cpu: float | None
    """Seconds of CPU the server used meanwhile (None when its process is unknown)."""
    bench_cpu: float

    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else math.nan

    def ms_per_request(self, cpu: float | None) -> float | None:
        return None if cpu is None or not self.requests else cpu / self.requests * 1000


@dataclasses.dataclass
class Samples:
    """Everything measured; seconds unless the name says otherwise."""

    create: list[float] = dataclasses.field(default_factory=list)
    create_server: list[float] = dataclasses.field(default_factory=list)
    start_answer: list[float] = dataclasses.field(default_factory=list)
    start_complete: list[float] = dataclasses.field(default_factory=list)
    start_complete_server: list[float] = dataclasses.field(default_factory=list)
    tick: list[float] = dataclasses.field(default_factory=list)
    ticks_sent: int = 0
    listed: int = 0
    alone: Load | None = None
    """GET /procedures with no SSE listener."""
    streamed: Load | None = None
    """GET /procedures while one SSE listener receives an event per request."""
    list_events_streamed: int = 0
    stream_disordered: int = 0
    stream_ended_early: bool = False
    cold_import: list[float] = dataclasses.field(default_factory=list)
    """Floor for create: cold ``python -c "import oet.runner"``."""
    loopback: list[float] = dataclasses.field(default_factory=list)
    """Floor for reads: one HTTP round trip on loopback to a minimal server."""
    loopback_cpu_ms: float = math.nan
    reads: list[float] = dataclasses.field(default_factory=list)
    """Sequential GET /procedures from one client."""
    idle: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    """RSS and PSS (MB) of the runners of ``--idle`` CREATED procedures, and of spares."""
    fanout: list[float] = dataclasses.field(default_factory=list)
    """Start -> complete event at the slowest of ``--listeners`` SSE clients."""
    errors: list[str] = dataclasses.field(default_factory=list)


def _pid_of(procedure: dict[str, Any]) -> int:
    return int(str(procedure["uri"]).rsplit("/", 1)[1])


async def create(api: Connection, uri: str, samples: Samples | None) -> int:
    """Create a procedure from ``uri``; record how long until it answered CREATED."""
    body = {"script_uri": uri, "script_args": {"init": {"args": [], "kwargs": {}}}}
    began = time.perf_counter()
    status, answer = await api.json("POST", "/procedures", body)
    took = time.perf_counter() - began
    procedure = answer.get("procedure") if isinstance(answer, dict) else None
    if status != 201 or not procedure or procedure.get("state") != "CREATED":
        raise BenchError(f"POST /procedures answered {status}: {answer}")
    if samples is not None:
        states = procedure["history"]["process_states"]
        samples.create.append(took)
        samples.create_server.append(states["CREATED"] - states["INITIALISING"])
    return _pid_of(procedure)


async def start(
    api: Connection, stream: EventStream, pid: int, run: dict[str, Any], timeout: float
) -> tuple[float, float, Received]:
    """Start ``pid``; return the PUT's answer time, the time to its end event, and the event."""
    end = stream.expect_end(pid)
    began = time.perf_counter()
    status, answer = await api.json("PUT", f"/procedures/{pid}", {"state": "RUNNING", **run})
    answered = time.perf_counter() - began
    if status != 200:
        raise BenchError(f"PUT /procedures/{pid} answered {status}: {answer}")
    try:
        event = await asyncio.wait_for(end, timeout)
    except TimeoutError:
        raise BenchError(f"procedure {pid} did not end within {timeout:g} s") from None
    if event.topic != "procedure.lifecycle.complete":
        raise BenchError(f"procedure {pid} ended with {event.topic}: {event.data['payload']}")
    return answered, event.mono - began, event


async def lifecycles(
    api: Connection, stream: EventStream, uri: str, args: argparse.Namespace, samples: Samples
) -> None:
    """Phases 1 and 2: create then start a no-op procedure, ``--runs`` times after warm-up."""
    for n in range(args.warmup + args.runs):
        await asyncio.sleep(args.pause)
        counted = samples if n >= args.warmup else None
        try:
            pid = await create(api, uri, counted)
            answered, to_end, event = await start(api, stream, pid, {}, args.timeout)
        except (BenchError, OSError, TimeoutError) as exc:
            samples.errors.append(f"lifecycle {n}: {exc}")
            continue
        if counted is not None:
            states = event.data["payload"]["procedure"]["history"]["process_states"]
            samples.start_answer.append(answered)
            samples.start_complete.append(to_end)
            samples.start_complete_server.append(states["COMPLETED"] - states["RUNNING"])


async def script_events(
    api: Connection, stream: EventStream, uri: str, args: argparse.Namespace, samples: Samples
) -> None:
    """Phase 3: a script publishes ``--events`` ticks; the stream measures their delay."""
    run = {"script_args": {"run": {"kwargs": {"count": args.events, "spacing": args.spacing}}}}
    limit = args.timeout + args.events * args.spacing * 2
    try:
        pid = await create(api, uri, None)
        await start(api, stream, pid, run, limit)
    except (BenchError, OSError, TimeoutError) as exc:
        samples.errors.append(f"script events: {exc}")
        return
    samples.tick = stream.tick_latencies.get(pid, [])
    samples.ticks_sent = args.events
    if len(samples.tick) != args.events:
        samples.errors.append(f"script events: {len(samples.tick)} of {args.events} arrived")


async def hammer(endpoint: Endpoint, pid: int | None, clients: int, seconds: float) -> Load:
    """Phase 4: ``clients`` keep-alive connections GET /procedures back to back."""
    request = endpoint.request("GET", "/procedures")
    done, failed = 0, 0
    server_before = cpu_seconds(pid) if pid else None
    bench_before = cpu_seconds(os.getpid())
    began = time.perf_counter()
    deadline = began + seconds

    async def client() -> None:
        nonlocal done, failed
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.perf_counter() < deadline:
            try:
                if streams is None:
                    streams = await asyncio.open_connection(endpoint.host, endpoint.port)
                streams[1].write(request)
                status, _ = await asyncio.wait_for(read_response(streams[0]), 10)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                failed += 1
                if streams is not None:
                    streams[1].close()
                streams = None
                await asyncio.sleep(0.01)
                continue
            if status == 200:
                done += 1
            else:
                failed += 1
        if streams is not None:
            streams[1].close()

    await asyncio.gather(*(client() for _ in range(clients)))
    took = time.perf_counter() - began
    server = cpu_seconds(pid) - server_before if pid and server_before is not None else None
    return Load(done, failed, took, server, cpu_seconds(os.getpid()) - bench_before)


async def fill_list(api: Connection, uri: str, want: int) -> int:
    """Create procedures until the list holds ``want`` (or the server keeps fewer)."""
    for _ in range(want):
        status, answer = await api.json("GET", "/procedures")
        if status != 200:
            raise BenchError(f"GET /procedures answered {status}: {answer}")
        if len(answer["procedures"]) >= want:
            break
        await create(api, uri, None)
    return len(answer["procedures"])


async def idle_memory(api: Connection, uri: str, pid: int, count: int) -> dict[str, list[float]]:
    """Create ``count`` procedures and leave them CREATED; their runners' memory."""
    for _ in range(count):
        await create(api, uri, None)
    await asyncio.sleep(1.0)  # for the spare started after the last create
    memory = runner_memory(pid)
    if len(memory["pss"]) < count:
        raise BenchError(f"{len(memory['pss'])} loaded runners found, {count} expected")
    return memory


# -- report ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Figure:
    """One line of the report; ``limit`` is None for figures given for information."""

    name: str
    value: float | None
    unit: str
    limit: float | None = None
    at_least: bool = False

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return ""
        if self.value is None or math.isnan(self.value):
            return "FAIL"
        ok = self.value > self.limit if self.at_least else self.value < self.limit
        return "PASS" if ok else "FAIL"

    def target(self) -> str:
        return "" if self.limit is None else f"{'>' if self.at_least else '<'} {self.limit:g}"


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def with_zygote_share(idle: dict[str, list[float]]) -> float:
    """Mean PSS of an idle loaded runner plus its share of the zygote's (over every runner)."""
    loaded, spares, zygote = (
        idle.get("pss", []),
        idle.get("spare_pss", []),
        idle.get("zygote_pss", []),
    )
    if not loaded:
        return math.nan
    return (sum(loaded) + sum(zygote) * len(loaded) / (len(loaded) + len(spares))) / len(loaded)


def figures(samples: Samples, memory: dict[str, float]) -> list[Figure]:
    """The report lines, targets first for each measurement."""
    ms = 1000.0

    def dist(name: str, values: list[float], limit: float | None = None) -> list[Figure]:
        p50, p95 = percentile(values, 0.5) * ms, percentile(values, 0.95) * ms
        return [Figure(f"{name} p50", p50, "ms", limit), Figure(f"{name} p95", p95, "ms")]

    def throughput(name: str, load: Load | None, limit: float | None = None) -> list[Figure]:
        if load is None:
            return [Figure(name, None, "req/s", limit, True)]
        return [
            Figure(name, load.per_second(), "req/s", limit, True),
            Figure("    server CPU per request", load.ms_per_request(load.server_cpu), "ms"),
            Figure("    bench CPU per request", load.ms_per_request(load.bench_cpu), "ms"),
            Figure("    bench CPU share of one core", load.bench_cpu / load.seconds * 100, "%"),
        ]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else math.nan

    create_p50 = percentile(samples.create, 0.5)
    cold_p50 = percentile(samples.cold_import, 0.5)
    reads_p50 = percentile(samples.reads, 0.5)
    loopback_p50 = percentile(samples.loopback, 0.5)
    alone_cpu = samples.alone.ms_per_request(samples.alone.server_cpu) if samples.alone else None
    idle = samples.idle

    report = [
        *dist("create -> CREATED", samples.create, 10),
        *dist("  server: CREATED - INITIALISING", samples.create_server),
        *dist("  floor: cold python -c 'import oet.runner'", samples.cold_import),
        Figure("  floor / create (p50s)", floors.ratio(cold_p50, create_p50), "x", 3, True),
        *dist("start -> COMPLETED event", samples.start_complete, 30),
        *dist("  server: COMPLETED - RUNNING", samples.start_complete_server),
        *dist("  PUT RUNNING answered", samples.start_answer),
        *dist("script event -> SSE client", samples.tick, 5),
        *throughput("GET /procedures", samples.alone, 6000),
        Figure("  procedures in each answer", samples.listed, ""),
        *dist("  one client, sequential", samples.reads),
        *dist("  floor: loopback HTTP round trip", samples.loopback),
        Figure("  one client / floor (p50s)", floors.ratio(reads_p50, loopback_p50), "x"),
        Figure("  floor server CPU per request", samples.loopback_cpu_ms, "ms"),
        Figure(
            "  server CPU per request / floor's",
            floors.ratio(alone_cpu or math.nan, samples.loopback_cpu_ms),
            "x",
        ),
        *throughput("  with one SSE listener open", samples.streamed),
        Figure(
            "  their events missing from the stream",
            (samples.streamed.requests if samples.streamed else 0) - samples.list_events_streamed,
            "",
            1,
        ),
        Figure("SSE events out of ID order", samples.stream_disordered, "", 1),
        *dist("start -> COMPLETED at slowest SSE listener", samples.fanout, 20),
        Figure("idle loaded procedure PSS (mean)", mean(idle.get("pss", [])), "MB", 5),
        Figure("  idle loaded procedure RSS (mean)", mean(idle.get("rss", [])), "MB"),
        Figure("  idle procedures measured", float(len(idle.get("pss", []))), ""),
        Figure("  spare runner PSS (mean)", mean(idle.get("spare_pss", [])), "MB"),
        Figure("  zygote PSS (shared by all)", sum(idle.get("zygote_pss", [])), "MB"),
        Figure("  PSS with zygote's share (mean)", with_zygote_share(idle), "MB"),
        Figure("SSE stream closed by the server", float(samples.stream_ended_early), "", 1),
    ]
    if memory:
        report += [
            Figure("server RSS after workload", memory["rss"], "MB", 120),
            Figure("server peak RSS (VmHWM)", memory["hwm"], "MB"),
            Figure("  server threads", memory["threads"], ""),
            Figure("  live runners", memory["runners"], ""),
            Figure("  runners' RSS total", memory["runner_rss"], "MB"),
        ]
    report.append(Figure("errors", float(len(samples.errors)), "", 1))
    return report


def _number(value: float, unit: str) -> str:
    if not unit:
        return f"{value:g}"
    return f"{value:.{3 if unit == 'ms' and value < 1 else 1}f} {unit}"


def print_table(report: list[Figure]) -> None:
    """The human-readable report."""
    print(f"{'figure':<40} {'value':>12}  {'target':<8} result")
    for figure in report:
        value = "n/a" if figure.value is None else _number(figure.value, figure.unit)
        print(f"{figure.name:<40} {value:>12}  {figure.target():<8} {figure.verdict}")


# -- the run ---------------------------------------------------------------------------


async def measure(endpoint: Endpoint, pid: int | None, args: argparse.Namespace) -> Samples:
    """Run the phases in order against the server at ``endpoint``."""
    samples = Samples()
    with tempfile.TemporaryDirectory(prefix="oet-bench-scripts-", dir=args.script_dir) as folder:
        noop, ticker = Path(folder, "bench_noop.py"), Path(folder, "bench_ticker.py")
        noop.write_text(NOOP_SCRIPT)
        ticker.write_text(TICKER_SCRIPT)
        samples.cold_import = await asyncio.to_thread(floors.cold_imports, args.source, 10)
        samples.loopback, samples.loopback_cpu_ms = await floors.loopback_round_trips(500)
        api = Connection(endpoint, args.timeout)
        stream = EventStream(endpoint)
        await stream.open(args.timeout)
        try:
            await lifecycles(api, stream, noop.as_uri(), args, samples)
            await script_events(api, stream, ticker.as_uri(), args, samples)
            samples.listed = await fill_list(api, noop.as_uri(), 10)
            if pid:
                samples.idle = await idle_memory(api, noop.as_uri(), pid, args.idle)
            samples.reads = await floors.sequential_reads(endpoint, 500)
            await asyncio.sleep(0.2)  # the last GET's event is still on its way
            listed_before = stream.topics[LISTED]
            samples.streamed = await hammer(endpoint, pid, args.clients, args.seconds / 2)
            await asyncio.sleep(0.5)  # for the stream to catch up
            samples.list_events_streamed = stream.topics[LISTED] - listed_before
        finally:
            samples.stream_disordered = stream.disordered
            samples.stream_ended_early = stream.ended
            await stream.close()
            api.close()
        await asyncio.sleep(0.2)  # let the server notice the listener has gone
        samples.alone = await hammer(endpoint, pid, args.clients, args.seconds)
        api = Connection(endpoint, args.timeout)
        try:
            samples.fanout = await fanout(api, noop.as_uri(), args.listeners, 5, args.timeout)
        except (BenchError, OSError, TimeoutError) as exc:
            samples.errors.append(f"SSE fan-out: {exc}")
        finally:
            api.close()
    loads = [load for load in (samples.alone, samples.streamed) if load is not None]
    if failed := sum(load.failed for load in loads):
        samples.errors.append(f"GET /procedures: {failed} failed requests")
    return samples


def bounded(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type: ``kind`` within [low, high]."""

    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


_LIMITS: list[tuple[str, Callable[[str], Any], float, float, float, str]] = [
    ("--runs", int, 1, 1000, 50, "create/start cycles measured"),
    ("--warmup", int, 0, 100, 3, "cycles run first and not counted"),
    ("--pause", float, 0, 5, 0, "seconds between create/start cycles (0: back to back)"),
    ("--events", int, 1, 10000, 200, "events the script publishes"),
    ("--spacing", float, 0, 1, 0.005, "seconds between script events"),
    ("--clients", int, 1, 256, 16, "concurrent GET /procedures connections"),
    ("--seconds", float, 0.5, 60, 5.0, "duration of the GET /procedures phase"),
    ("--timeout", float, 1, 120, 30.0, "limit in seconds for any one request or wait"),
    ("--idle", int, 1, 10, 10, "CREATED procedures whose runners' memory is measured"),
    ("--listeners", int, 1, 200, 50, "SSE listeners waiting for a procedure's end together"),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; every count and duration is bounded."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        help="API of a running loopback server, e.g. http://127.0.0.1:5000/api/v1.0"
        " (default: start one with a temporary database)",
    )
    parser.add_argument("--pid", type=int, help="with --url: the server's process ID")
    parser.add_argument(
        "--script-dir",
        type=Path,
        help="where the benchmark writes its scripts, in a fresh subfolder: with --url, one"
        " of the server's script_dirs (default: the system's temporary folder)",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="without --url: run the server from this checkout, e.g. one made by"
        " `git archive REV | tar -x -C DIR` (default: the one bench/ is in)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="without --url: run the server under cProfile, stats to this file",
    )
    for option, kind, low, high, default, what in _LIMITS:
        parser.add_argument(
            option,
            type=bounded(kind, low, high),
            default=kind(str(default)),
            help=f"{what} (default {default:g})",
        )
    parser.add_argument("--json", action="store_true", help="print figures and samples as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep-log", action="store_true", help="print the server's log")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> tuple[list[Figure], Samples]:
    """Measure, against the given server or one of our own."""
    if args.url:
        endpoint = Endpoint.parse(args.url)
        await wait_ready(endpoint, args.timeout, lambda: False)
        samples = await measure(endpoint, args.pid, args)
        return figures(samples, memory_of(args.pid) if args.pid else {}), samples
    with (
        tempfile.TemporaryDirectory(prefix="oet-bench-") as folder,
        own_server(Path(folder), args.source, args.profile) as server,
    ):
        try:
            endpoint = Endpoint.parse(server.url)
            await wait_ready(endpoint, 30, server.exited)
            samples = await measure(endpoint, server.pid, args)
            return figures(samples, memory_of(server.pid)), samples
        except BenchError:
            if not args.keep_log:
                print(server.log.read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            if args.keep_log:
                print(server.log.read_text(), file=sys.stderr)


def budget(args: argparse.Namespace) -> float:
    """Seconds the whole benchmark may take: generous, but finite."""
    cycles = (args.warmup + args.runs + 12) * (args.pause + 2)
    return float(120 + cycles + args.events * args.spacing * 2 + args.seconds * 2)


def event_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (as uvicorn[standard] installs it): a lighter client."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; 0 unless ``--strict`` and a target is missed."""
    args = parse_args(argv)
    try:
        with asyncio.Runner(loop_factory=event_loop()) as runner:
            report, samples = runner.run(asyncio.wait_for(run(args), budget(args)))
    except (BenchError, ValueError, OSError, TimeoutError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    if args.json:
        lines = [{**dataclasses.asdict(f), "verdict": f.verdict} for f in report]
        for line in lines:  # JSON has no NaN
            if isinstance(line["value"], float) and math.isnan(line["value"]):
                line["value"] = None
        print(json.dumps({"figures": lines, "samples": dataclasses.asdict(samples)}, indent=1))
    else:
        print_table(report)
        for error in samples.errors[:10]:
            print(f"error: {error}", file=sys.stderr)
    missed = any(f.verdict == "FAIL" for f in report)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
