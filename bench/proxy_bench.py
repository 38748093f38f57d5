#!/usr/bin/env python3
"""Reproducible reverse-proxy benchmark: apishield against nginx and nginx + ModSecurity + CRS.

One command starts every target on loopback ports, checks that each one answers (and
that the WAFs block a SQL injection), drives them with wrk in interleaved rounds, and
writes a markdown report::

    python bench/proxy_bench.py [--duration 10] [--repeats 3] [--workers 2] \
        [--out bench/RESULTS.md]

It installs nothing: ``bench/setup.sh`` does. Run files go to ``bench/runs/<timestamp>/``.
Only the Python standard library is used, so any Python >= 3.11 runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
CONF_DIR = BENCH_DIR / "conf"

MODSEC_MODULE = Path("/usr/share/nginx/modules/ngx_http_modsecurity_module.so")
MODSEC_CONF = Path("/etc/nginx/modsecurity.conf")
UNICODE_MAP = Path("/etc/nginx/unicode.mapping")
CRS_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
CRS_BEFORE = Path("/etc/modsecurity/crs/REQUEST-900-EXCLUSION-RULES-BEFORE-CRS.conf")
CRS_AFTER = Path("/etc/modsecurity/crs/RESPONSE-999-EXCLUSION-RULES-AFTER-CRS.conf")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")

GET_PATH = "/api/items?id=42&sort=name&q=blue+shoes"
POST_PATH = "/api/orders"
SQLI_PATH = "/?id=1%27%20OR%20%271%27%3D%271"  # GET /?id=1' OR '1'='1
CONCURRENCIES = (1, 16, 64)
# Sent by wrk and the verification requests alike. A numeric Host header would trip CRS
# rule 920350 on every request (and write each one to the audit log), which no real
# deployment pays; a name-based Host and a User-Agent keep benign traffic rule-clean.
CLIENT_HEADERS = {
    "Host": "api.example.com",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Accept": "application/json",
}

ALL_TARGETS = ("upstream", "nginx", "modsec", "apishield", "apishield-off")
TARGET_LABELS = {
    "upstream": "upstream direct (nginx return 200)",
    "nginx": "nginx reverse proxy",
    "modsec": "nginx + ModSecurity v3 + OWASP CRS (PL1)",
    "apishield": "apishield proxy (default protection)",
    "apishield-off": "apishield proxy (mode: off)",
}


class BenchError(Exception):
    """A problem that stops the benchmark with a message rather than a traceback."""


# -- processes -------------------------------------------------------------------------


class Processes:
    """Every process the benchmark starts, each in its own session, stopped on exit."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: Sequence[str], log_dir: Path) -> subprocess.Popen[bytes]:
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "stdout.log").open("ab") as out, (log_dir / "stderr.log").open("ab") as err:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=log_dir,
            )
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process group now (SIGTERM, then SIGKILL after 10 s)."""
        _signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        _signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
        self.forget(proc)

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        """Drop a process that has exited and been reaped (its pid may be reused)."""
        self._procs = [(n, p) for n, p in self._procs if p is not proc]

    def stop_all(self) -> None:
        """SIGTERM each process group we started, then SIGKILL whatever is left."""
        for _, proc in reversed(self._procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in reversed(self._procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for _, proc in reversed(self._procs):
            # The group may outlive its leader (workers), so always sweep it.
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._procs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # start_new_session=True made the child a session (and group) leader: pgid == pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# -- small helpers ---------------------------------------------------------------------


def render(template: Path, values: dict[str, object]) -> str:
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    leftover = re.findall(r"\{\{(\w+)\}\}", text)
    if leftover:
        raise BenchError(f"{template.name}: unfilled placeholders {sorted(set(leftover))}")
    return text


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_ports(base: int, count: int) -> list[int]:
    """``count`` free loopback ports from ``base`` up, below the ephemeral range."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports: list[int] = []
    port = base
    while len(ports) < count:
        if port >= low:
            raise BenchError(f"no {count} free ports between {base} and the ephemeral range")
        if port_is_free(port):
            ports.append(port)
        port += 1
    return ports


def http_request(
    port: int, method: str, target: str, body: bytes = b"", content_type: str = ""
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = dict(CLIENT_HEADERS)
        if content_type:
            headers["Content-Type"] = content_type
        conn.request(method, target, body=body or None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with status {proc.returncode} while starting")
        try:
            status, _ = http_request(port, "GET", "/")
            if status < 500:
                return
            last = f"status {status}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(f"{name} not ready on port {port} after {timeout:.0f}s ({last})")


def run_quiet(argv: Sequence[str]) -> str:
    """stdout + stderr of a short command, or '' when it cannot run."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def dpkg_version(package: str) -> str:
    out = run_quiet(["dpkg-query", "-W", "-f=${Version}", package])
    return out if out and "no packages found" not in out else ""


# -- prerequisites ---------------------------------------------------------------------


def find_apishield(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    venv = REPO_DIR / ".venv" / "bin" / "apishield"
    if venv.exists():
        return str(venv)
    return shutil.which("apishield")


def apishield_proxy_available(exe: str | None) -> tuple[bool, str]:
    if exe is None:
        return False, "no `apishield` executable (expected .venv/bin/apishield)"
    try:
        done = subprocess.run(
            [exe, "proxy", "--help"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"`{exe} proxy --help` failed: {exc}"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return False, f"`apishield proxy --help` exited {done.returncode}: " + (
            lines[-1] if lines else "no output"
        )
    return True, ""


def check_prerequisites(targets: Sequence[str]) -> None:
    missing: list[str] = []
    if shutil.which("nginx") is None:
        missing.append("nginx (package nginx)")
    if shutil.which("wrk") is None:
        missing.append("wrk (package wrk)")
    if "modsec" in targets:
        for path, pkg in (
            (MODSEC_MODULE, "libnginx-mod-http-modsecurity"),
            (MODSEC_CONF, "libnginx-mod-http-modsecurity"),
            (UNICODE_MAP, "libnginx-mod-http-modsecurity"),
            (CRS_SETUP, "modsecurity-crs"),
            (CRS_BEFORE, "modsecurity-crs"),
            (CRS_AFTER, "modsecurity-crs"),
        ):
            if not path.exists():
                missing.append(f"{path} (package {pkg})")
        if not sorted(CRS_RULES.glob("*.conf")):
            missing.append(f"{CRS_RULES}/*.conf (package modsecurity-crs)")
    if missing:
        raise BenchError(
            "missing prerequisites:\n  - "
            + "\n  - ".join(missing)
            + "\ninstall them with: sudo bench/setup.sh  (Debian/Ubuntu: apt-get install -y "
            "nginx libnginx-mod-http-modsecurity modsecurity-crs wrk)"
        )


# -- targets ---------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None


def start_nginx(procs: Processes, name: str, conf_text: str, run_dir: Path, port: int) -> Target:
    tdir = run_dir / name
    (tdir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = tdir / "nginx.conf"
    conf.write_text(conf_text, encoding="utf-8")
    test = subprocess.run(
        ["nginx", "-t", "-q", "-p", str(tdir), "-c", str(conf), "-e", str(tdir / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    if test.returncode != 0:
        raise BenchError(f"{name}: nginx -t failed:\n{test.stderr.strip()}")
    proc = procs.start(
        name,
        ["nginx", "-p", str(tdir), "-c", str(conf), "-e", str(tdir / "error.log")],
        tdir,
    )
    wait_ready(port, proc, name)
    return Target(name, port, proc)


def write_modsec_rules(run_dir: Path, paranoia_level: int) -> Path:
    """Copy Debian's modsecurity.conf with the fairness edits of the peer notes."""
    mdir = run_dir / "modsec" / "rules"
    mdir.mkdir(parents=True, exist_ok=True)
    text = MODSEC_CONF.read_text(encoding="utf-8")
    edits = (
        (r"(?m)^\s*SecRuleEngine\s+\S+", "SecRuleEngine On"),
        (r"(?m)^\s*SecStatusEngine\s+\S+", "SecStatusEngine Off"),
        (r"(?m)^\s*SecAuditLog\s+\S+", f"SecAuditLog {run_dir / 'modsec' / 'audit.log'}"),
        (r"(?m)^\s*SecUnicodeMapFile\s+\S+", f"SecUnicodeMapFile {UNICODE_MAP}"),
    )
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise BenchError(f"{MODSEC_CONF}: expected one {pattern!r} line, found {count}")
    for required in ("SecRequestBodyAccess On", "requestBodyProcessor=JSON"):
        if required not in text:
            raise BenchError(f"{MODSEC_CONF} no longer contains {required!r}; check the copy")
    (mdir / "modsecurity.conf").write_text(text, encoding="utf-8")
    main = mdir / "main.conf"
    main.write_text(
        render(
            CONF_DIR / "modsec-main.conf.tmpl",
            {
                "modsecurity_conf": mdir / "modsecurity.conf",
                "paranoia_level": paranoia_level,
                "crs_setup": CRS_SETUP,
                "crs_before": CRS_BEFORE,
                "crs_rules": CRS_RULES,
                "crs_after": CRS_AFTER,
            },
        ),
        encoding="utf-8",
    )
    return main


def start_apishield(
    procs: Processes, exe: str, name: str, *, mode: str, run_dir: Path, values: dict[str, object]
) -> Target:
    port = int(str(values["port"]))
    tdir = run_dir / name
    tdir.mkdir(parents=True, exist_ok=True)
    policy = tdir / "policy.yaml"
    policy.write_text(
        render(
            CONF_DIR / "apishield-policy.yaml.tmpl",
            {**values, "name": name, "mode": mode},
        ),
        encoding="utf-8",
    )
    proc = procs.start(name, [exe, "proxy", "--policy", str(policy)], tdir)
    try:
        wait_ready(port, proc, name)
    except BenchError:
        procs.stop(proc)
        raise
    return Target(name, port, proc)


def verify_target(target: Target, body: bytes, expect_sqli_block: bool | None) -> list[str]:
    """Clean GET and POST must give 200; the SQLi GET 403 (WAFs) or 200 (no inspection)."""
    notes = []
    status, _ = http_request(target.port, "GET", GET_PATH)
    if status != 200:
        raise BenchError(f"{target.name}: clean GET {GET_PATH} answered {status}, expected 200")
    status, _ = http_request(target.port, "POST", POST_PATH, body, "application/json")
    if status != 200:
        raise BenchError(f"{target.name}: clean JSON POST answered {status}, expected 200")
    status, _ = http_request(target.port, "GET", SQLI_PATH)
    if expect_sqli_block is True and status != 403:
        raise BenchError(f"{target.name}: GET /?id=1' OR '1'='1 answered {status}, expected 403")
    if expect_sqli_block is False and status != 200:
        raise BenchError(f"{target.name}: GET /?id=1' OR '1'='1 answered {status}, expected 200")
    notes.append(f"clean GET 200, clean POST 200, SQLi GET {status}")
    return notes


def audit_entries(audit_log: Path) -> int:
    if not audit_log.exists():
        return 0
    return len(re.findall(r"^---\w+---A--$", audit_log.read_text(errors="replace"), re.M))


def check_modsec_logs(run_dir: Path, target: Target, body: bytes) -> str:
    """The SQLi block came from 942100 + 949110, and clean requests match no rule at all."""
    audit = run_dir / "modsec" / "audit.log"
    deadline = time.monotonic() + 5  # the logging phase runs after the response is sent
    while True:
        logs = (run_dir / "modsec" / "error.log").read_text(errors="replace")
        logs += audit.read_text(errors="replace") if audit.exists() else ""
        if '"942100"' in logs and '"949110"' in logs:
            break
        if time.monotonic() > deadline:
            raise BenchError("ModSecurity answered 403 but rules 942100/949110 are not logged")
        time.sleep(0.1)
    before = audit_entries(audit)
    http_request(target.port, "GET", GET_PATH)
    http_request(target.port, "POST", POST_PATH, body, "application/json")
    time.sleep(0.2)
    if audit_entries(audit) != before:
        raise BenchError(
            f"ModSecurity matched rules on the clean requests (see {audit}); "
            "the measurement would include audit logging"
        )
    return "SQLi blocked by 942100 → 949110; clean GET/POST match no rule (no audit entry)"


# -- wrk -------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    target: str
    scenario: str
    repeat: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    requests: int
    cpu_s: float
    other_cpu_pct: float  # machine CPU used by processes outside the benchmark

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / self.requests if self.requests else 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_time_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unparsable wrk time {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> tuple[float, float, float, int, int, int]:
    """req/s, p50 ms, p99 ms, non-2xx count, socket errors, total requests."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"cannot parse wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(g) for g in sock.groups()) if sock else 0
    return (
        float(rps.group(1)),
        parse_time_ms(p50.group(1)),
        parse_time_ms(p99.group(1)),
        int(non2xx.group(1)) if non2xx else 0,
        errors,
        int(total.group(1)),
    )


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    concurrency: int

    @property
    def label(self) -> str:
        what = f"GET {GET_PATH}" if self.method == "GET" else "POST 504-byte JSON"
        return f"{what}, {self.concurrency} connections"


def run_wrk(
    procs: Processes,
    target: Target,
    scenario: Scenario,
    *,
    duration: float,
    lua: Path,
    log: Path,
) -> str:
    path = GET_PATH if scenario.method == "GET" else POST_PATH
    argv = [
        "wrk",
        f"-t{min(2, scenario.concurrency)}",
        f"-c{scenario.concurrency}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for key, value in CLIENT_HEADERS.items():
        argv += ["-H", f"{key}: {value}"]
    if scenario.method == "POST":
        argv += ["-s", str(lua)]
    argv.append(f"http://127.0.0.1:{target.port}{path}")
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = procs.start("wrk", argv, log.parent / "wrk-tmp")
    proc.wait(timeout=duration + 60)
    procs.forget(proc)
    output = (log.parent / "wrk-tmp" / "stdout.log").read_text(encoding="utf-8")
    shutil.rmtree(log.parent / "wrk-tmp", ignore_errors=True)
    log.write_text(" ".join(shlex.quote(a) for a in argv) + "\n\n" + output, encoding="utf-8")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited {proc.returncode} against {target.name}: {output}")
    return output


# -- memory ----------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(stat.parent.name))
    return sorted(kids)


def status_kib(pid: int, field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def tree_of(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children_of(current))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``'s process tree (all threads included)."""
    ticks = 0
    for member in tree_of(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def system_busy_seconds() -> float:
    """User + nice + system CPU seconds of the whole machine since boot, all cores summed.

    irq/softirq time is left out: loopback traffic is processed there and it is not
    charged to any process, so it would otherwise count as load from someone else.
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[:3]) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    """CPU of this script plus its reaped children (wrk runs are reaped when they end)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclasses.dataclass
class Memory:
    master_kib: int | None
    workers_kib: list[int]
    workers_hwm_kib: list[int]


def memory_of(target: Target) -> Memory:
    assert target.proc is not None
    pid = target.proc.pid
    workers = children_of(pid)
    return Memory(
        master_kib=status_kib(pid, "VmRSS"),
        workers_kib=[k for w in workers if (k := status_kib(w, "VmRSS")) is not None],
        workers_hwm_kib=[k for w in workers if (k := status_kib(w, "VmHWM")) is not None],
    )


# -- machine ---------------------------------------------------------------------------


def machine_info(exe: str | None) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text()
    mem = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    crs = ""
    with contextlib.suppress(OSError):
        found = re.search(
            r'SecComponentSignature\s+"OWASP_CRS/([\d.]+)"',
            (CRS_RULES / "REQUEST-901-INITIALIZATION.conf").read_text(),
        )
        crs = found.group(1) if found else ""
    libmodsec = dpkg_version("libmodsecurity3")
    if not libmodsec:
        libs = sorted(Path("/usr/lib").rglob("libmodsecurity.so.3.*"))
        libmodsec = libs[0].name.removeprefix("libmodsecurity.so.") if libs else "unknown"
    commit = run_quiet(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    dirty = run_quiet(["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "src"])
    return {
        "CPU": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "RAM": f"{int(mem.group(1)) / 1048576:.1f} GiB" if mem else "unknown",
        "kernel": platform.release(),
        "OS": _os_name(),
        "Python": platform.python_version(),
        "nginx": run_quiet(["nginx", "-v"]).removeprefix("nginx version: "),
        "libmodsecurity": libmodsec,
        "ModSecurity-nginx": dpkg_version("libnginx-mod-http-modsecurity") or "unknown",
        "OWASP CRS": crs or dpkg_version("modsecurity-crs") or "unknown",
        "wrk": (run_quiet(["wrk", "-v"]).splitlines() or ["unknown"])[0].split(" [")[0],
        "apishield": (
            f"git {commit}" + (" (src/ has uncommitted changes)" if dirty else "")
            if commit
            else "unknown"
        ),
        "apishield build": apishield_build(exe),
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def apishield_build(exe: str | None) -> str:
    """What ``apishield --version`` says of its build (compiled or plain Python)."""
    found = re.search(r"\((.+)\)\s*$", run_quiet([exe, "--version"]) if exe else "")
    return found.group(1) if found else "unknown"


def _os_name() -> str:
    with contextlib.suppress(OSError):
        found = re.search(r'^PRETTY_NAME="?([^"\n]+)', Path("/etc/os-release").read_text(), re.M)
        if found:
            return found.group(1)
    return platform.system()


# -- report ----------------------------------------------------------------------------


def _fmt_ms(value: float) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    return f"{sign}{value * 1000:.0f} µs" if value < 1 else f"{sign}{value:.2f} ms"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


@dataclasses.dataclass
class Summary:
    rps: float
    rps_min: float
    rps_max: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    cpu_us: float
    other_pct: float


def summarise(samples: list[Sample]) -> dict[tuple[str, str], Summary]:
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.target, s.scenario), []).append(s)
    return {
        key: Summary(
            rps=statistics.median(s.rps for s in group),
            rps_min=min(s.rps for s in group),
            rps_max=max(s.rps for s in group),
            p50_ms=statistics.median(s.p50_ms for s in group),
            p99_ms=statistics.median(s.p99_ms for s in group),
            non_2xx=sum(s.non_2xx for s in group),
            errors=sum(s.socket_errors for s in group),
            cpu_us=statistics.median(s.cpu_ms_per_request * 1000 for s in group),
            other_pct=statistics.median(s.other_cpu_pct for s in group),
        )
        for key, group in groups.items()
    }


def build_report(
    *,
    command: str,
    machine: dict[str, str],
    args: argparse.Namespace,
    targets: list[str],
    skipped: dict[str, str],
    ports: dict[str, int],
    scenarios: list[Scenario],
    summary: dict[tuple[str, str], Summary],
    samples: list[Sample],
    memory: dict[str, Memory],
    verification: dict[str, list[str]],
    run_dir: Path,
    elapsed_s: float,
) -> str:
    out: list[str] = ["# apishield proxy benchmark", ""]
    shown_dir = run_dir.relative_to(REPO_DIR) if run_dir.is_relative_to(REPO_DIR) else run_dir
    out += [
        "Generated by `bench/proxy_bench.py`; see `bench/README.md` for the method. "
        f"Run files: `{shown_dir}` (not committed).",
        "",
        "```",
        command,
        "```",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    out += [f"| {k} | {v} |" for k, v in machine.items()]
    out += [
        "",
        "## Setup",
        "",
        f"- {args.workers} worker process(es) for every target, the upstream included; "
        "wrk runs `-t2` on the same machine (all on 127.0.0.1, nothing pinned).",
        f"- {args.duration:.0f} s per measurement, {args.repeats} repeat(s), interleaved "
        "round-robin across targets; figures are medians over the repeats "
        "(req/s range = min to max).",
        "- Upstream: nginx `return 200` with a 70-byte JSON body. Proxies keep upstream "
        "connections alive.",
        "- Every request carries `Host: api.example.com`, a browser User-Agent and "
        "`Accept: application/json` (a numeric Host would trip CRS rule 920350 on every "
        "request and audit-log it).",
        "- CPU µs/request: user + system CPU of the target's own processes (master, workers, "
        "threads; the upstream excluded) during the run, divided by the requests wrk "
        "completed. It is less sensitive than req/s to CPU taken by other processes.",
        "- other load: share of the machine's CPU used during the run by processes outside "
        "the benchmark (/proc/stat busy time minus the targets, wrk and this script); "
        "median over rounds. Above a few percent, req/s and latencies are perturbed.",
        f"- ModSecurity: Debian's `modsecurity.conf` with SecRuleEngine On, SecStatusEngine "
        f"Off, CRS paranoia level {args.paranoia_level}, request body access on, JSON body "
        "processor, audit log in the run folder.",
        f"- Whole run took {elapsed_s / 60:.1f} min.",
        "",
        "| target | port | verified before measuring |",
        "|---|---|---|",
    ]
    for name in ALL_TARGETS:
        if name in targets:
            out.append(
                f"| {TARGET_LABELS[name]} | {ports[name]} | "
                f"{'; '.join(verification.get(name, [])) or '—'} |"
            )
        elif name in skipped:
            reason = skipped[name].replace("|", "\\|")
            out.append(f"| {TARGET_LABELS[name]} | — | **skipped**: {reason} |")
    out.append("")

    def get(target: str, scenario: Scenario) -> Summary | None:
        return summary.get((target, scenario.name))

    for scenario in scenarios:
        out += [
            f"## {scenario.label}",
            "",
            "| target | req/s (median) | req/s range | p50 | p99 | CPU µs/request "
            "| other load | non-2xx | socket errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name in ALL_TARGETS:
            s = get(name, scenario)
            if s is None:
                out.append(f"| {TARGET_LABELS[name]} | not measured | | | | | | | |")
                continue
            out.append(
                f"| {TARGET_LABELS[name]} | {s.rps:,.0f} | {s.rps_min:,.0f} to {s.rps_max:,.0f} | "
                f"{_fmt_ms(s.p50_ms)} | {_fmt_ms(s.p99_ms)} | {s.cpu_us:,.0f} | "
                f"{s.other_pct:.0f}% | {s.non_2xx} | {s.errors} |"
            )
        out.append("")

    out += [
        "## Ratios (req/s, medians)",
        "",
        "| scenario | apishield ÷ nginx+ModSecurity+CRS | apishield default ÷ apishield off "
        "| apishield ÷ plain nginx | nginx+ModSecurity+CRS ÷ plain nginx |",
        "|---|---:|---:|---:|---:|",
    ]

    def rps(target: str, scenario: Scenario) -> float | None:
        s = get(target, scenario)
        return s.rps if s else None

    for scenario in scenarios:
        out.append(
            f"| {scenario.label} | {_ratio(rps('apishield', scenario), rps('modsec', scenario))} "
            f"| {_ratio(rps('apishield', scenario), rps('apishield-off', scenario))} "
            f"| {_ratio(rps('apishield', scenario), rps('nginx', scenario))} "
            f"| {_ratio(rps('modsec', scenario), rps('nginx', scenario))} |"
        )
    out += [
        "",
        "## Added latency over upstream direct (1 and 16 connections)",
        "",
        "Per round, the target's percentile minus upstream direct's in the same round; the "
        "median over rounds. A negative value means the difference is inside the noise. "
        "With one connection this is the time a proxy adds to a request; with 16 (wrk is "
        "closed-loop) it also holds the queueing of 16 requests on 2 cores, so it falls as "
        "throughput rises.",
        "",
        "| scenario | target | p50 added | p99 added |",
        "|---|---|---:|---:|",
    ]
    for scenario in scenarios:
        if scenario.concurrency > 16:
            continue
        base = {
            s.repeat: s for s in samples if (s.target, s.scenario) == ("upstream", scenario.name)
        }
        for name in ("apishield", "apishield-off", "nginx", "modsec"):
            pairs = [
                (s, base[s.repeat])
                for s in samples
                if (s.target, s.scenario) == (name, scenario.name) and s.repeat in base
            ]
            if not pairs:
                out.append(f"| {scenario.label} | {TARGET_LABELS[name]} | n/a | n/a |")
                continue
            p50 = statistics.median(s.p50_ms - b.p50_ms for s, b in pairs)
            p99 = statistics.median(s.p99_ms - b.p99_ms for s, b in pairs)
            out.append(
                f"| {scenario.label} | {TARGET_LABELS[name]} | {_fmt_ms(p50)} | {_fmt_ms(p99)} |"
            )
    out += [
        "",
        "## Memory after the run (RSS, steady state)",
        "",
        "| target | master RSS | RSS per worker | peak RSS per worker (VmHWM) |",
        "|---|---:|---|---|",
    ]
    for name in ALL_TARGETS:
        mem = memory.get(name)
        if mem is None:
            out.append(f"| {TARGET_LABELS[name]} | not measured | | |")
            continue
        master = f"{mem.master_kib / 1024:.1f} MiB" if mem.master_kib else "?"
        workers = ", ".join(f"{k / 1024:.1f} MiB" for k in mem.workers_kib) or "no workers"
        hwm = ", ".join(f"{k / 1024:.1f} MiB" for k in mem.workers_hwm_kib) or "—"
        out.append(f"| {TARGET_LABELS[name]} | {master} | {workers} | {hwm} |")
    out += [
        "",
        "## Caveats",
        "",
        "- Load generator, proxy and upstream share the same cores, so every figure is a "
        "closed-loop, CPU-contended loopback number: it compares targets with each other on "
        "this machine, not what any of them does on dedicated hardware.",
        "- The proxied targets also pay for the upstream's CPU, so their req/s ceiling is below "
        "upstream direct even with zero inspection cost.",
        "- The machine is shared: other processes may take CPU during a run (see the load "
        "averages above). Interleaved rounds spread that over all targets; compare the "
        "CPU µs/request column when req/s look noisy.",
        "- Only benign requests are measured; blocked requests (403) are cheap for every WAF "
        "and are not part of the throughput figures.",
        "- wrk is closed-loop (no coordinated-omission correction); p99 at 64 connections "
        "mostly reflects queueing.",
        "",
    ]
    return "\n".join(out)


# -- main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per target")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per run key")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    parser.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated subset of {','.join(ALL_TARGETS)}",
    )
    parser.add_argument("--base-port", type=int, default=18080, help="first port to try")
    parser.add_argument("--paranoia-level", type=int, default=1, choices=(1, 2, 3, 4))
    parser.add_argument("--apishield", default=None, help="apishield executable")
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(ALL_TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {', '.join(ALL_TARGETS)}")
    if args.duration < 1 or args.repeats < 1 or args.workers < 1:
        parser.error("--duration, --repeats and --workers must be at least 1")
    args.targets = [t for t in ALL_TARGETS if t in targets]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    command = "python " + shlex.join([sys.argv[0], *given])
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    procs = Processes()
    try:
        return _run(args, command, procs)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping every process started", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()


@dataclasses.dataclass
class RunFiles:
    run_dir: Path
    body: bytes
    lua: Path


def prepare_run_dir() -> RunFiles:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = BENCH_DIR / "runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=False)
    body = (CONF_DIR / "post-body.json").read_bytes()
    body_file = run_dir / "post-body.json"
    body_file.write_bytes(body)
    lua = run_dir / "post.lua"
    lua.write_text(render(CONF_DIR / "post.lua.tmpl", {"body_file": body_file}), encoding="utf-8")
    return RunFiles(run_dir, body, lua)


def start_targets(
    procs: Processes,
    targets: list[str],
    *,
    ports: dict[str, int],
    files: RunFiles,
    args: argparse.Namespace,
    exe: str | None,
    skipped: dict[str, str],
) -> tuple[dict[str, Target], dict[str, list[str]]]:
    """Start each target in order (upstream first) and verify it before any measurement."""
    running: dict[str, Target] = {}
    verification: dict[str, list[str]] = {}
    run_dir = files.run_dir
    for name in targets:
        print(f"starting {TARGET_LABELS[name]} on 127.0.0.1:{ports[name]}")
        values: dict[str, object] = {
            "workers": args.workers,
            "run_dir": run_dir,
            "upstream_port": ports["upstream"],
            "name": name,
            "port": ports[name],
        }
        if name == "upstream":
            conf = render(CONF_DIR / "nginx-upstream.conf.tmpl", values)
            running[name] = start_nginx(procs, name, conf, run_dir, ports[name])
            expect_block: bool | None = None
        elif name in ("nginx", "modsec"):
            values["load_module"] = ""
            values["modsecurity"] = ""
            if name == "modsec":
                rules = write_modsec_rules(run_dir, args.paranoia_level)
                values["load_module"] = f"load_module {MODSEC_MODULE};"
                values["modsecurity"] = (
                    f"        modsecurity on;\n        modsecurity_rules_file {rules};"
                )
            conf = render(CONF_DIR / "nginx-proxy.conf.tmpl", values)
            running[name] = start_nginx(procs, name, conf, run_dir, ports[name])
            expect_block = name == "modsec"
        else:
            assert exe is not None
            mode = "block" if name == "apishield" else "off"
            try:
                running[name] = start_apishield(
                    procs, exe, name, mode=mode, run_dir=run_dir, values=values
                )
                verification[name] = verify_target(running[name], files.body, name == "apishield")
            except (BenchError, OSError) as exc:
                # The proxy is young: report why it was left out instead of losing the run.
                stderr = run_dir / name / "stderr.log"
                lines = stderr.read_text(errors="replace").strip().splitlines()
                detail = f"{exc}" + (f"; last stderr line: {lines[-1]}" if lines else "")
                if name in running:
                    proc = running.pop(name).proc
                    if proc is not None:
                        procs.stop(proc)
                skipped[name] = detail
                print(f"  skipped: {detail}", file=sys.stderr)
            else:
                print("  " + "; ".join(verification[name]))
            continue
        verification[name] = verify_target(running[name], files.body, expect_block)
        if name == "modsec":
            verification[name].append(check_modsec_logs(run_dir, running[name], files.body))
        print("  " + "; ".join(verification[name]))
    return running, verification


def measure(
    procs: Processes,
    running: dict[str, Target],
    scenarios: list[Scenario],
    *,
    files: RunFiles,
    args: argparse.Namespace,
) -> list[Sample]:
    """Warm every (target, scenario) up, then measure in interleaved round-robin rounds."""
    measured = [t for t in ALL_TARGETS if t in running]
    total_runs = len(measured) * len(scenarios) * args.repeats
    estimate = total_runs * (args.duration + 0.5) + len(measured) * len(scenarios) * (
        args.warmup + 0.5
    )
    print(f"{total_runs} measurements, about {estimate / 60:.1f} min")
    wrk_dir = files.run_dir / "wrk"
    if args.warmup > 0:
        for name in measured:
            for scenario in scenarios:
                run_wrk(
                    procs,
                    running[name],
                    scenario,
                    duration=args.warmup,
                    lua=files.lua,
                    log=wrk_dir / f"warmup-{name}-{scenario.name}.txt",
                )
    samples: list[Sample] = []
    for repeat in range(args.repeats):
        for scenario in scenarios:
            for name in measured:
                master = running[name].proc
                assert master is not None
                all_before = sum(cpu_seconds(t.proc.pid) for t in running.values() if t.proc)
                own_before, busy_before, wall_before = (
                    own_seconds(),
                    system_busy_seconds(),
                    time.monotonic(),
                )
                cpu_before = cpu_seconds(master.pid)
                output = run_wrk(
                    procs,
                    running[name],
                    scenario,
                    duration=args.duration,
                    lua=files.lua,
                    log=wrk_dir / f"r{repeat}-{name}-{scenario.name}.txt",
                )
                cpu = cpu_seconds(master.pid) - cpu_before
                all_cpu = (
                    sum(cpu_seconds(t.proc.pid) for t in running.values() if t.proc) - all_before
                )
                other = system_busy_seconds() - busy_before - all_cpu - (own_seconds() - own_before)
                capacity = (time.monotonic() - wall_before) * (os.cpu_count() or 1)
                other_pct = max(0.0, 100 * other / capacity)
                rps, p50, p99, non2xx, errors, total = parse_wrk(output)
                sample = Sample(
                    name,
                    scenario.name,
                    repeat,
                    rps,
                    p50,
                    p99,
                    non2xx,
                    errors,
                    total,
                    cpu,
                    other_pct,
                )
                samples.append(sample)
                print(
                    f"[{len(samples)}/{total_runs}] round {repeat + 1} {scenario.name:8} "
                    f"{name:14}{rps:10,.0f} req/s  p50 {_fmt_ms(p50):>9}  "
                    f"p99 {_fmt_ms(p99):>9}  CPU {sample.cpu_ms_per_request * 1000:7.1f} µs/req"
                    + f"  other load {other_pct:3.0f}%"
                    + (f"  non-2xx {non2xx}" if non2xx else "")
                    + (f"  socket errors {errors}" if errors else "")
                )
    return samples


def _run(args: argparse.Namespace, command: str, procs: Processes) -> int:
    started = time.monotonic()
    targets = [t for t in ALL_TARGETS if t in args.targets or t == "upstream"]
    check_prerequisites(targets)
    skipped: dict[str, str] = {}
    exe = find_apishield(args.apishield)
    if {"apishield", "apishield-off"} & set(targets):
        ok, why = apishield_proxy_available(exe)
        if not ok:
            for name in ("apishield", "apishield-off"):
                if name in targets:
                    targets.remove(name)
                    skipped[name] = f"apishield proxy not available ({why})"
            print(f"skipping the apishield targets: {why}", file=sys.stderr)

    files = prepare_run_dir()
    ports = dict(zip(targets, choose_ports(args.base_port, len(targets)), strict=True))
    print(f"run folder {files.run_dir}; ports {ports}")
    machine = machine_info(exe)
    running, verification = start_targets(
        procs, targets, ports=ports, files=files, args=args, exe=exe, skipped=skipped
    )
    scenarios = [
        Scenario(f"{m.lower()}-c{c}", m, c) for m in ("GET", "POST") for c in CONCURRENCIES
    ]
    samples = measure(procs, running, scenarios, files=files, args=args)
    memory = {name: memory_of(target) for name, target in running.items()}
    (files.run_dir / "samples.json").write_text(
        json.dumps([dataclasses.asdict(s) for s in samples], indent=1), encoding="utf-8"
    )
    machine["load average at end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    report = build_report(
        command=command,
        machine=machine,
        args=args,
        targets=list(running),
        skipped=skipped,
        ports=ports,
        scenarios=scenarios,
        summary=summarise(samples),
        samples=samples,
        memory=memory,
        verification=verification,
        run_dir=files.run_dir,
        elapsed_s=time.monotonic() - started,
    )
    (files.run_dir / "RESULTS.md").write_text(report, encoding="utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print()
    print(report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
