"""Aligned text tables, percentiles, and the machine the figures were measured on."""

from __future__ import annotations

import os
import platform
import socket
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psutil

MIB = 1024 * 1024
GIB = 1024 * MIB
Cell = str | int | float | None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` (0..1) percentile of ``values``, linear between points."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    index = min(len(cuts) - 1, max(0, round(fraction * 1000) - 1))
    return cuts[index]


def format_cell(value: Cell, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return value


@dataclass
class Table:
    """A titled text table; numbers are right-aligned, text left-aligned."""

    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digits: int = 1

    def add(self, *cells: Cell) -> None:
        self.rows.append(list(cells))

    def render(self) -> str:
        text = [[format_cell(cell, self.digits) for cell in row] for row in self.rows]
        widths = [len(header) for header in self.headers]
        for row in text:
            for column, cell in enumerate(row):
                widths[column] = max(widths[column], len(cell))
        numeric = [
            all(isinstance(row[c], int | float) or row[c] is None for row in self.rows)
            for c in range(len(self.headers))
        ]

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.rjust(widths[c]) if numeric[c] and self.rows else cell.ljust(widths[c])
                for c, cell in enumerate(cells)
            ]
            return "  ".join(parts).rstrip()

        out = [self.title, line(self.headers), "  ".join("-" * w for w in widths)]
        out += [line(row) for row in text]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mariadb_version(server_url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SELECT VERSION()")).scalar())
    except Exception as error:
        return f"unreachable ({type(error).__name__})"
    finally:
        engine.dispose()


def _rabbitmq_version(amqp_host: str, amqp_port: int) -> str:
    try:
        import amqp

        connection = amqp.Connection(f"{amqp_host}:{amqp_port}", userid="guest", password="guest")
        connection.connect()
        try:
            version = connection.server_properties.get("version", "unknown")
            return version.decode() if isinstance(version, bytes) else str(version)
        finally:
            connection.close()
    except Exception as error:
        return f"unreachable ({type(error).__name__})"


def stomp_server(port: int, *, login: str = "", passcode: str = "", timeout_s: float = 2.0) -> str:
    """The ``server`` header of a STOMP CONNECTED frame on 127.0.0.1:``port``; '' if none."""
    frame = f"CONNECT\naccept-version:1.2\nhost:/\nlogin:{login}\npasscode:{passcode}\n\n\x00"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as connection:
            connection.sendall(frame.encode())
            answer = connection.recv(4096).decode(errors="replace")
            connection.sendall(b"DISCONNECT\n\n\x00")
    except OSError:
        return ""
    for line in answer.splitlines():
        if line.startswith("server:"):
            return line.split(":", 1)[1].strip()
    return "STOMP (no server header)" if answer.startswith("CONNECTED") else ""


def machine_table(mysql_server_url: str) -> Table:
    """CPU, cores, RAM, Python and the service versions, with the date."""
    table = Table("Machine", ["what", "value"])
    memory = psutil.virtual_memory()
    table.add("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M"))
    table.add("CPU", _cpu_model())
    table.add("cores", str(os.cpu_count()))
    table.add("RAM", f"{memory.total / GIB:.1f} GiB ({memory.available / GIB:.1f} GiB free)")
    table.add("OS", f"{platform.system()} {platform.release()}")
    table.add("Python", f"{platform.python_implementation()} {platform.python_version()}")
    table.add("MariaDB", _mariadb_version(mysql_server_url))
    table.add("RabbitMQ", _rabbitmq_version("127.0.0.1", 5672))
    table.add("STOMP :61613", stomp_server(61613, login="admin", passcode="admin") or "not running")
    table.add("STOMP :61614", stomp_server(61614, login="guest", passcode="guest") or "not running")
    return table
