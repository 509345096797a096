"""Helpers shared by the Kafka integration tests."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel

from dispytch import EventBase, EventEmitter, Message

LISTENER_SCRIPT = Path(__file__).with_name("kafka_listener_process.py")


class Numbered(EventBase):
    """The event these tests send; `route` is the topic."""

    __topic__ = "{route}"
    __event_type__ = "numbered"

    route: str
    seq: int


def fresh(kind: str) -> str:
    return f"kafka-it.{kind}.{uuid.uuid4().hex[:10]}"


async def emit_numbered(
    bootstrap: str,
    topic: str,
    seqs: Iterable[int],
    config: Callable[[int], BaseModel | None] = lambda seq: None,
) -> None:
    """Emit `Numbered(seq)` for each of `seqs` concurrently, with `config(seq)` as config."""
    async with EventEmitter.from_backend("kafka", bootstrap_servers=bootstrap) as emitter:
        await asyncio.gather(
            *(
                emitter.emit(Numbered(route=topic, seq=seq, __backend_config__=config(seq)))
                for seq in seqs
            )
        )


async def take(
    messages: AsyncIterator[Message], count: int, timeout: float = 30.0
) -> list[Message]:
    """The next `count` messages of a consumer's `listen()`; fail after `timeout` seconds."""

    async def collect() -> list[Message]:
        return [await anext(messages) for _ in range(count)]

    try:
        return await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"fewer than {count} messages arrived within {timeout}s") from None


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset of each partition of `topic` (0 when none)."""
    client = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await client.start()
    try:
        partitions = client.partitions_for_topic(topic)
        assert partitions, f"the broker does not know topic {topic!r}"
        found = {p: await client.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        await client.stop()
    return {p: offset or 0 for p, offset in found.items()}


async def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""

    async def poll() -> None:
        while not check():  # noqa: ASYNC110 - polls files and broker state, not an event
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting until {what}") from None


Record = tuple[int, int, int]
"""(partition, offset, seq) of one handled event."""


def read_records(path: Path) -> list[Record]:
    """What a listener process recorded; a line cut short by SIGKILL is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            partition, offset, seq = map(int, fields)
            records.append((partition, offset, seq))
    return records


class ListenerProcess:
    """`kafka_listener_process.py` as a child process recording to `record`."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, record: Path, delay: float = 0.0
    ) -> None:
        self.args = (bootstrap, topic, group, str(record), str(delay))
        self.record = record
        self.log = record.with_suffix(".log")
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 30.0) -> None:
        """Start the process; return once it printed "ready" (joined its group)."""
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(LISTENER_SCRIPT),
                *self.args,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            line = b""
        if line.strip() != b"ready":
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"listener process not ready; its log:\n{self.log.read_text()}")

    def records(self) -> list[Record]:
        return read_records(self.record)

    async def kill(self) -> None:
        """SIGKILL: no stop, no commit, no leaving the group."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, which stops the listener gracefully; wait for the process to exit."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(f"listener process ignored SIGTERM for {timeout}s") from None
        assert self.process.returncode == 0, (
            f"exit code {self.process.returncode}:\n{self.log.read_text()}"
        )
