"""A per-plugin fork server: a small process that imported one plugin, forking its reductions.

The processor itself imports no plugin's heavy modules (scipp, matplotlib): for each plugin it
serves from an installed package it starts ``python -m queue_processor.fork_server PLUGIN``, which
loads only that plugin's entry point, runs its ``warm_up`` hook and then, on request, forks a
*ready child* (:func:`queue_processor.child.ready_child`) from its warm, small address space. Each
reduction is still a fresh process; forking it costs a fraction of forking the processor.

The two talk over a UNIX socket pair. The processor sends one byte ``F`` with two file
descriptors attached (``SCM_RIGHTS``: the job pipe's read end and the result pipe's write end);
the server forks, hands the child those descriptors and answers ``P <pid>``. It reaps its children
and reports each exit as ``X <pid> <exit code>`` (negative: the signal), so the processor can say
how a child that left no verdict died. The server dies with its processor (``PR_SET_PDEATHSIG``)
and exits when the socket closes; a reduction child dies with its server.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time

SERVER_FD_ENV = "AUTOREDUCE_FORK_SERVER_FD"
READY_TIMEOUT_S = 300.0  # a plugin's warm_up may import a large stack on a cold disk
REPLY_TIMEOUT_S = 30.0


class ForkServerError(RuntimeError):
    """The fork server did not start, died, or did not answer."""


class ForkServer:
    """The processor's handle on one plugin's fork server (started at once, waited for lazily)."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        self._buffer = b""
        self._ready = False
        self.exits: dict[int, int] = {}  # children reaped by the server: pid → exit code
        env = {**os.environ, SERVER_FD_ENV: str(theirs.fileno())}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "queue_processor.fork_server", plugin],
            pass_fds=(theirs.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _line(self, deadline: float) -> str:
        """The next line from the server (exit notices are filed as they pass)."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ForkServerError(f"fork server for {self.plugin} did not answer in time")
            readable, _, _ = select.select([self._sock], [], [], remaining)
            if not readable:
                continue
            chunk = self._sock.recv(4096)
            if not chunk:
                code = self.process.poll()
                raise ForkServerError(f"fork server for {self.plugin} exited (status {code})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def _read_one(self, deadline: float) -> str:
        """The next line; an exit notice is filed in :attr:`exits` and answers ""."""
        line = self._line(deadline)
        kind, _, rest = line.partition(" ")
        if kind == "X":
            pid, code = rest.split()
            self.exits[int(pid)] = int(code)
            return ""
        return line

    def _next_reply(self, deadline: float) -> str:
        """The next line that is not an exit notice."""
        while not (line := self._read_one(deadline)):
            pass
        return line

    def wait_ready(self) -> None:
        if self._ready:
            return
        line = self._next_reply(time.monotonic() + READY_TIMEOUT_S)
        if line != "R":
            raise ForkServerError(f"fork server for {self.plugin} failed to start: {line}")
        self._ready = True

    def fork(self, job_fd: int, result_fd: int) -> int:
        """A new ready child holding ``job_fd`` and ``result_fd`` (the caller closes its copies)."""
        self.wait_ready()
        socket.send_fds(self._sock, [b"F"], [job_fd, result_fd])
        line = self._next_reply(time.monotonic() + REPLY_TIMEOUT_S)
        kind, _, pid = line.partition(" ")
        if kind != "P":
            raise ForkServerError(f"fork server for {self.plugin} could not fork: {line}")
        return int(pid)

    def poll_exits(self) -> None:
        """File the exit notices that have arrived, without waiting."""
        if not self._ready:
            return  # its first line is "R" (or why it failed), read by wait_ready
        while True:
            readable, _, _ = select.select([self._sock], [], [], 0)
            if not readable and b"\n" not in self._buffer:
                return
            try:
                self._read_one(time.monotonic() + REPLY_TIMEOUT_S)
            except ForkServerError:
                return

    def wait_exit(self, pid: int, timeout_s: float) -> int | None:
        """The exit code of child ``pid`` once the server reaped it; None if not in time."""
        deadline = time.monotonic() + timeout_s
        while pid not in self.exits:
            try:
                self._read_one(deadline)
            except ForkServerError:
                break
        return self.exits.pop(pid, None)

    def close(self, timeout_s: float = 10.0) -> None:
        """Close the socket (the server exits once its children have) and wait for it."""
        with contextlib.suppress(OSError):
            self._sock.close()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the server process ---------------------------------------------------------------------


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        with contextlib.suppress(OSError):
            sock.sendall(f"X {pid} {_exit_code(status)}\n".encode())


def _load(plugin: str) -> object:
    """The plugin manager holding only ``plugin``'s entry point, warmed up."""
    import pluggy

    from autoreduce import hookspecs
    from autoreduce.plugin import PROJECT
    from autoreduce.plugin_manager import ENTRY_POINT_GROUP, Plugins

    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=plugin)
    plugins = Plugins(manager)
    with contextlib.suppress(Exception):  # a broken warm_up fails its runs, not the server
        plugins.warm_up(plugin)
    return plugins


def serve(plugin: str, sock: socket.socket) -> None:
    import gc

    import queue_processor.isolation  # noqa: F401 - unpickling a job imports it: once, here
    from queue_processor.child import _die_with_parent, ready_child

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the processor stops it by closing the socket
    try:
        plugins = _load(plugin)
    except Exception as error:
        sock.sendall(f"E {type(error).__name__}: {error}".replace("\n", " ").encode() + b"\n")
        return
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    gc.freeze()  # what is imported stays shared with the children, untouched by their collector
    sock.sendall(b"R\n")
    while True:
        readable, _, _ = select.select([sock.fileno(), wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 4096)
            _reap(sock)
        if sock.fileno() not in readable:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1, 2)
        except OSError:  # the processor died
            break
        if not message:
            break  # the processor closed its end
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            sock.sendall(b"E bad request\n")
            continue
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            sock.close()
            os.close(wake_read)
            os.close(wake_write)
            ready_child(plugins, fds[0], fds[1])  # type: ignore[arg-type]
        for fd in fds:
            os.close(fd)
        sock.sendall(f"P {pid}\n".encode())
    # The processor is gone or closing: children get EOF on their job pipes and exit.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.wait()


def main() -> None:
    plugin = sys.argv[1]
    sock = socket.socket(fileno=int(os.environ.pop(SERVER_FD_ENV)))
    try:
        serve(plugin, sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
