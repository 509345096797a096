"""The `dispytch_client` fixture of the pytest plugin, under pytest-asyncio and under anyio's
pytest plugin, each run alone in a fresh pytest process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

SERVICE = """
from typing import Annotated

from pydantic import BaseModel

from dispytch import Dependency, Event, EventBase, EventEmitter, EventListener


class UserCreated(EventBase):
    __topic__ = "users"
    __event_type__ = "user_created"
    user_id: int
    email: str


class WelcomeSent(EventBase):
    __topic__ = "mails"
    __event_type__ = "welcome_sent"
    user_id: int


class User(BaseModel):
    user_id: int
    email: str


def mailer():
    raise AssertionError("the real mailer is never used in tests")


listener = EventListener.from_url("kafka://prod:9092", group="mails")
emitter = EventEmitter.from_url("kafka://prod:9092")


@listener.handler(topic="users", event="user_created")
async def welcome(event: Event[User], mail: Annotated[list, Dependency(mailer)]) -> None:
    mail.append(event.body.email)
    await emitter.emit(WelcomeSent(user_id=event.body.user_id))
"""

TESTS = """
{marker}
async def test_welcome(dispytch_client):
    fake_mailer = []
    overrides = {{mailer: fake_mailer}}
    async with dispytch_client(listener, emitters=[emitter], overrides=overrides) as client:
        await client.emit(UserCreated(user_id=1, email="a@b.c"))
        assert client.calls(welcome)[0].body.email == "a@b.c"
        client.emitted.assert_any(WelcomeSent, user_id=1)
        assert client.dead_letters == []
    assert fake_mailer == ["a@b.c"]


{marker}
async def test_a_client_left_running_fails_the_test(dispytch_client):
    await dispytch_client(listener).__aenter__()
"""


def _write(pytester: pytest.Pytester, marker: str, ini: str) -> None:
    pytester.makepyfile(service=SERVICE)
    pytester.makepyfile(
        test_service="from service import *\nimport pytest\n" + TESTS.format(marker=marker)
    )
    pytester.makeini(f"[pytest]\n{ini}\n")


def _check(result: pytest.RunResult) -> None:
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*1 TestClient(s) were entered and never left*"])


def test_under_pytest_asyncio(pytester: pytest.Pytester) -> None:
    _write(pytester, "", "asyncio_mode = auto\nasyncio_default_fixture_loop_scope = function")
    _check(pytester.runpytest_subprocess("-p", "no:anyio", "-p", "no:cacheprovider"))


def test_under_anyio(pytester: pytest.Pytester) -> None:
    marker = "@pytest.mark.anyio"
    _write(pytester, marker, "")
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef anyio_backend():\n    return 'asyncio'\n"
    )
    _check(pytester.runpytest_subprocess("-p", "no:asyncio", "-p", "no:cacheprovider"))


def _example_module() -> str:
    """The complete example test module of docs/testing.md, as a reader would save it."""
    page = Path(__file__).parents[2] / "docs" / "testing.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    [module] = [block for block in blocks if block.startswith("# test_welcome.py")]
    return module


def test_the_documented_example_module_passes_under_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_welcome=_example_module())
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:anyio", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
