"""The ``apishield`` command line. Each command only parses options and delegates."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from apishield import COMPILED, __version__
from apishield.cli_events import events_command
from apishield.errors import PolicyError
from apishield.findings import Verdict
from apishield.policy import Policy, load_policy, policy_from_dict

console = Console(stderr=False)
errors = Console(stderr=True)

POLICY_OPTION = click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Policy YAML file (default: the built-in default policy).",
)


def _load(policy_path: Path | None, **overrides: Any) -> Policy:
    """The policy from ``policy_path`` (or the default), exiting with its errors if invalid."""
    try:
        policy = load_policy(policy_path) if policy_path else policy_from_dict({})
        if overrides:
            data = policy.model_dump(mode="json", exclude_unset=True)
            data.update(overrides)
            policy = policy_from_dict(data, source=str(policy_path or "<options>"))
    except PolicyError as exc:
        errors.print(f"[red]{exc}[/red]", highlight=False)
        sys.exit(2)
    return policy


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    prog_name="apishield",
    message=f"%(prog)s %(version)s ({'compiled' if COMPILED else 'plain Python'})",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """apishield: protect HTTP APIs with one security engine and one policy."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@POLICY_OPTION
@click.option("--upstream", help="Zero-config: forward everything to this URL.")
@click.option("--listen", help="host:port to listen on (overrides the policy).")
@click.option("--workers", type=int, help="Worker processes; 0 = one per core.")
def proxy(
    policy_path: Path | None, upstream: str | None, listen: str | None, workers: int | None
) -> None:
    """Run the inline reverse proxy."""
    from apishield.adapters.proxy import serve  # noqa: PLC0415 - heavy, proxy-only imports
    from apishield.reload import PolicyHolder  # noqa: PLC0415

    overrides: dict[str, Any] = {}
    if upstream:
        overrides["upstreams"] = {"default": {"url": upstream}}
    policy = _load(policy_path, **overrides)
    if not policy.upstreams:
        errors.print("[red]no upstream: give --upstream URL or upstreams.default in the policy")
        sys.exit(2)
    holder = PolicyHolder(policy_path if not overrides else None, policy=policy)
    _print_banner(policy, listen, workers)
    serve(holder, listen=listen, workers=workers)


def _print_banner(policy: Policy, listen: str | None, workers: int | None) -> None:
    """One line saying where the proxy listens, what it protects and where events go."""
    scheme = "https" if policy.server.tls else "http"
    count = policy.server.workers if workers is None else workers
    processes = f"{count} worker(s)" if count else "a worker per core"
    upstreams = ", ".join(f"{name} → {u.url}" for name, u in policy.upstreams.items())
    console.print(
        f"apishield proxy on {scheme}://{listen or policy.server.listen} "
        f"({processes}), mode {policy.mode}; upstreams: {upstreams}; "
        f"events → {', '.join(policy.events.sinks)}",
        highlight=False,
        soft_wrap=True,
    )


@main.command()
@click.argument("policy_path", type=click.Path(dir_okay=False, path_type=Path))
def validate(policy_path: Path) -> None:
    """Validate a policy file and exit 0 if it is valid."""
    from apishield.engine import Engine  # noqa: PLC0415

    policy = _load(policy_path)
    try:
        engine = Engine(policy)
    except PolicyError as exc:
        errors.print(f"[red]{exc}[/red]", highlight=False)
        sys.exit(2)
    checks = ", ".join(c.check.id for c in engine.checks)
    console.print(f"[green]valid[/green]: mode {policy.mode}, checks: {checks}")


@main.command()
@click.argument("source", type=click.File("rb"), default="-")
@POLICY_OPTION
@click.option("--raw", is_flag=True, help="SOURCE is a raw HTTP request, not a JSON record.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def check(policy_path: Path | None, source: Any, raw: bool, fmt: str) -> None:
    """Inspect one request and print the verdict.

    SOURCE is a JSON record ({"method", "path", "query", "headers", "body"}) or, with
    --raw, a raw HTTP message; '-' reads standard input. Exit status: 0 allowed,
    1 blocked or rejected, 2 invalid input or policy.
    """
    from apishield.engine import Engine  # noqa: PLC0415
    from apishield.ingest import IngestError, parse_raw_request, request_from_record  # noqa: PLC0415

    data = source.read()
    try:
        request = parse_raw_request(data) if raw else request_from_record(orjson.loads(data))
    except (IngestError, orjson.JSONDecodeError) as exc:
        errors.print(f"[red]cannot read the request: {exc}")
        sys.exit(2)
    tx = Engine(_load(policy_path)).inspect(request)
    event = tx.finish()
    if fmt == "json":
        click.echo(orjson.dumps(event.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_verdict(tx.verdict, event.to_json())
    sys.exit(1 if tx.verdict is not None and tx.verdict.interrupts else 0)


def _print_verdict(verdict: Verdict | None, event: dict[str, Any]) -> None:
    colour = {"allow": "green", "monitor": "yellow"}.get(event["verdict"], "red")
    status = f" → {verdict.status}" if verdict is not None else ""
    console.print(
        f"[bold {colour}]{event['verdict'].upper()}[/]{status}  event {event['event_id']}"
        f"  engine {event['engine_ms']:.3f} ms"
    )
    if not event["findings"]:
        return
    table = Table("check", "location", "score", "mode", "evidence", "message")
    for f in event["findings"]:
        where = f["location"]["source"] + (
            f":{f['location']['name']}" if f["location"]["name"] else ""
        )
        table.add_row(f["check"], where, str(f["score"]), f["mode"], f["evidence"], f["message"])
    console.print(table)


@main.command(name="eval")
@click.argument("corpora", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@POLICY_OPTION
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="JSON report path.")
@click.option("--limit", type=int, help="Replay at most this many records per corpus.")
def evaluate(
    corpora: tuple[Path, ...], policy_path: Path | None, report: Path | None, limit: int | None
) -> None:
    """Replay labelled corpora through the engine; print detection and false-positive rates."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn  # noqa: PLC0415

    from apishield.evaluate import evaluate_corpus  # noqa: PLC0415

    policy = _load(policy_path)
    reports = {}
    for corpus in corpora:
        total = _count_lines(corpus, limit)
        columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeRemainingColumn(), console=errors, transient=True) as bar:
            task = bar.add_task(corpus.name, total=total)

            def advance(n: int, task: Any = task, bar: Progress = bar) -> None:
                bar.update(task, advance=n)

            result = evaluate_corpus(corpus, policy, progress=advance, limit=limit)
        console.print(result.render_text())
        reports[str(corpus)] = result.to_json()
    if report is not None:
        report.write_bytes(orjson.dumps(reports, option=orjson.OPT_INDENT_2))
        console.print(f"report written to {report}")


def _count_lines(path: Path, limit: int | None) -> int:
    with path.open("rb") as handle:
        count = sum(1 for _ in handle)
    return min(count, limit) if limit is not None else count


@main.command()
@click.option("--port", type=int, default=8000, show_default=True, help="Proxy port.")
@click.option("--keep-running", is_flag=True, help="Keep the proxy up after the scripted traffic.")
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("apishield-demo"),
    show_default=True,
    help="Where the demo writes its policy and event store.",
)
def demo(port: int, keep_running: bool, workdir: Path) -> None:
    """Start a demo API behind the proxy, send normal and attack traffic, show what happened."""
    from apishield.demo import run_demo  # noqa: PLC0415

    run_demo(console, port=port, workdir=workdir, keep_running=keep_running)


main.add_command(events_command, name="events")
