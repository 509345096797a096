"""`dispytch run ...` as a child process of a test, with its stderr kept in a log file.

    service = ServiceProcess(["recorder:app", "--workers", "3"], cwd=tmp_path, env={...})
    await service.start()
    await service.wait_for_log("listening on", count=3)
    service.terminate(); assert await service.wait(30) == 0

`records(path)` reads what the recording apps of the process tests write: one line per
handled event, `<pid> <partition or -> <seq>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

from dispytch import EventBase, EventEmitter

RECORDER_APP = '''
"""An app for process tests: records `<pid> <partition> <seq>` per handled event."""

import asyncio
import contextlib
import os

from pydantic import BaseModel

from dispytch import App, Event, EventListener


class Numbered(BaseModel):
    seq: int


listener = EventListener.from_url(
    os.environ["TEST_BACKEND_URL"], group=os.environ["TEST_GROUP"]
)
DELAY = float(os.environ.get("TEST_HANDLER_DELAY", "0"))


@listener.handler(topic=os.environ["TEST_TOPIC"], event="numbered")
async def record(event: Event[Numbered]) -> None:
    await asyncio.sleep(DELAY)
    partition = event.metadata.get("partition", "-")
    with open(os.environ["TEST_RECORD"], "a") as out:
        out.write(f"{os.getpid()} {partition} {event.body.seq}\\n")


app = App([listener], stop_timeout=float(os.environ.get("TEST_STOP_TIMEOUT", "30")))
'''
"""Write this as `recorder.py` and run `recorder:app`; configured by TEST_* variables."""


def recorder_env(
    url: str, group: str, topic: str, record: Path, *, handler_delay: float
) -> dict[str, str]:
    """The TEST_* variables of `RECORDER_APP`: consume `topic` on `url` in `group`, sleep
    `handler_delay` seconds per event, and append what was handled to `record`."""
    return {
        "TEST_BACKEND_URL": url,
        "TEST_GROUP": group,
        "TEST_TOPIC": topic,
        "TEST_RECORD": str(record),
        "TEST_HANDLER_DELAY": str(handler_delay),
    }


class Numbered(EventBase):
    """The event the recorder app handles; `route` is the topic."""

    __topic__ = "{route}"
    __event_type__ = "numbered"

    route: str
    seq: int


async def emit_numbered(
    url: str,
    topic: str,
    seqs: Iterable[int],
    config: Callable[[int], BaseModel | None] = lambda seq: None,
) -> None:
    """Emit `Numbered(seq)` for each of `seqs`, with `config(seq)` as its backend config."""
    async with EventEmitter.from_url(url) as emitter:
        await emitter.emit_many(
            Numbered(route=topic, seq=seq, __backend_config__=config(seq)) for seq in seqs
        )


async def eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.05)


async def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of `GET path` on 127.0.0.1:`port`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        response = (await asyncio.wait_for(reader.read(), 10)).decode()
    finally:
        writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split()[1]), body.strip()


async def until_ready(port: int, what: str, timeout: float = 60.0) -> None:
    """Poll `/readyz` on `port` until it answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = await http_get(port, "/readyz")
        except OSError as exc:
            status, body = 0, repr(exc)  # not listening yet
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz answered {status} {body!r} for {timeout}s: {what}")
        await asyncio.sleep(0.1)


Record = tuple[int, str, int]
"""(pid, partition or "-", seq) of one handled event."""


def records(path: Path) -> list[Record]:
    """What the recorder app wrote to `path`; a line cut short by SIGKILL is skipped."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].isdigit() and fields[2].isdigit():
            found.append((int(fields[0]), fields[1], int(fields[2])))
    return found


class ServiceProcess:
    """A `python -m dispytch.cli run ARGS` process; its stderr goes to `log`."""

    def __init__(
        self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path | None = None
    ) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.env = {**os.environ, **env}
        self.log = log or cwd / "service.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process (in its own process group, so a test can clean up all of it)."""
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dispytch.cli",
                "run",
                *self.args,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        """What the process wrote so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def wait_for_log(self, text: str, count: int = 1, timeout: float = 60.0) -> None:
        """Wait until `text` appears `count` times in the output; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            if self.process is not None and self.process.returncode is not None:
                raise AssertionError(f"the service exited; its output:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} did not appear {count} times in {timeout}s:\n{self.output()}"
                )
            await asyncio.sleep(0.05)

    def terminate(self) -> None:
        """SIGTERM to the service (the supervisor, with --workers)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:
        """The exit code; fail when the process did not exit within `timeout` seconds."""
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"the service did not exit within {timeout}s:\n{self.output()}"
            ) from None

    def kill_all(self) -> None:
        """SIGKILL the whole process group: for cleanup after a failed test."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def worker_pids(supervisor_pid: int) -> list[int]:
    """The pids of the live child processes of `supervisor_pid` (Linux /proc)."""
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children")
    try:
        return [int(pid) for pid in children.read_text().split()]
    except FileNotFoundError:
        return []


async def check_competing_workers(
    url: str, topic: str, group: str, directory: Path, health_port: int | None = None
) -> str:
    """`dispytch run recorder:app --workers 3` on `url`: events are spread over the three
    workers, a SIGKILLed worker is replaced and the replacement consumes, nothing is lost,
    and SIGTERM drains every worker with exit code 0. With `health_port`, the supervisor's
    `/readyz` answers 200 once every worker is ready, and again once the replacement is.
    Returns what was measured."""
    record = directory / "records.txt"
    (directory / "recorder.py").write_text(RECORDER_APP)
    env = recorder_env(url, group, topic, record, handler_delay=0.005)
    args = ["recorder:app", "--workers", "3", "--stop-timeout", "20"]
    if health_port is not None:
        args += ["--health-port", str(health_port)]
    service = ServiceProcess(args, cwd=directory, env=env)
    emitted: set[int] = set()

    async def emit(seqs: range) -> set[int]:
        await emit_numbered(url, topic, seqs)
        emitted.update(seqs)
        return set(seqs)

    def handled(batch: set[int]) -> bool:
        return batch <= {seq for *_, seq in records(record)}

    await service.start()
    try:
        await service.wait_for_log("listening on", count=3)
        await eventually(lambda: len(worker_pids(service.pid)) == 3, "three workers run")
        workers = set(worker_pids(service.pid))
        if health_port is not None:
            await until_ready(health_port, "every worker is ready")
        first = await emit(range(0, 600))
        await eventually(lambda: len({p for p, *_ in records(record)}) == 3, "all three consume")
        victim = sorted(workers)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        spread = {p for p, *_ in records(record)}
        assert spread == workers, f"events spread over the three workers: {spread} {workers}"
        await eventually(lambda: handled(first), "every event of the first batch was handled")
        await eventually(
            lambda: len(set(worker_pids(service.pid)) - workers) == 1, "a replacement started"
        )
        replacement = (set(worker_pids(service.pid)) - workers).pop()
        start = 600
        while replacement not in {p for p, *_ in records(record)}:
            batch = await emit(range(start, start + 30))
            start += 30
            await eventually(lambda batch=batch: handled(batch), "a batch was handled")
        replaced_in = time.monotonic() - killed_at
        if health_port is not None:
            await until_ready(health_port, "the replacement is ready too")
        service.terminate()
        terminated_at = time.monotonic()
        code = await service.wait(30)
        drained_in = time.monotonic() - terminated_at
        assert code == 0, service.output()
    finally:
        service.kill_all()
    assert worker_pids(service.pid) == []
    assert {seq for *_, seq in records(record)} == emitted, "no event was lost"
    return (
        f"replacement consuming {replaced_in:.1f}s after SIGKILL; drained and exited "
        f"{drained_in:.1f}s after SIGTERM; {len(records(record)) - len(emitted)} handled twice"
    )
