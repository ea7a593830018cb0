"""``scripts/services.sh start activemq`` straight after the broker was killed.

CI once failed here: the broker's main thread was already a zombie (so the script no longer saw
it as running) while its other threads still held the STOMP port, and the start gave up with
"port 61613 is taken by a process this script did not start". A broker killed a moment ago is the
script's own, still dying: the start waits for it to let go of the port, then starts a new one.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import psutil
import pytest

from tests.e2e.services import ACTIVEMQ_URL, STATE_DIR, activemq_pid, start_activemq, stop_activemq
from tests.polling import wait_for

pytestmark = pytest.mark.exclusive  # kills the shared ActiveMQ: runs alone


def _stomp_connects() -> bool:
    url = urlsplit(ACTIVEMQ_URL)
    headers = f"accept-version:1.2\nhost:/\nlogin:{url.username}\npasscode:{url.password}"
    frame = f"CONNECT\n{headers}\n\n\0"
    try:
        with socket.create_connection((url.hostname, url.port), timeout=5) as connection:
            connection.sendall(frame.encode())
            return connection.recv(9) == b"CONNECTED"
    except OSError:
        return False


# A stand-in for a broker in the middle of dying: its main thread exits at once (the process is
# then a zombie to `kill -0` and /proc), another thread keeps the STOMP port for three seconds.
DYING_BROKER = """
import ctypes, socket, sys, threading, time
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen()
def hold():
    time.sleep(3)
    listener.close()
threading.Thread(target=hold).start()
print("listening", flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_start_waits_for_its_dying_broker_to_let_go_of_the_port() -> None:
    start_activemq()
    stop_activemq(signal.SIGTERM)
    port = urlsplit(ACTIVEMQ_URL).port
    dying = subprocess.Popen(
        [sys.executable, "-c", DYING_BROKER, str(port), "activemq.jar"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert dying.stdout is not None and dying.stdout.readline().strip() == "listening"
        wait_for(lambda: psutil.Process(dying.pid).status() == psutil.STATUS_ZOMBIE, timeout_s=10)
        (STATE_DIR / "activemq.pid").write_text(f"{dying.pid}\n")
        start_activemq()
        assert activemq_pid() != dying.pid
        wait_for(_stomp_connects, timeout_s=30)
    finally:
        dying.kill()
        dying.wait()


def test_a_start_right_after_a_kill_runs_a_fresh_broker() -> None:
    start_activemq()
    killed = activemq_pid()
    stop_activemq(signal.SIGKILL)  # returns once the main thread is gone or a zombie
    start_activemq()
    restarted = activemq_pid()
    assert restarted != killed
    assert psutil.Process(restarted).status() != psutil.STATUS_ZOMBIE
    wait_for(_stomp_connects, timeout_s=30)
