"""`dispytch docs gen module:app` writes the AsyncAPI document as YAML or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from official_schema import problems

from dispytch.cli import main

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)  # the command imports module:app from the working directory


def test_writes_json_for_a_json_file(
    tmp_path: Path, asyncapi_validator: jsonschema.Draft7Validator
) -> None:
    out = tmp_path / "asyncapi.json"
    assert main(["docs", "gen", "complex_app:app", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    assert problems(asyncapi_validator, document) == []
    assert document["info"] == {"title": "complex_app:app", "version": "0.0.0"}
    assert "s3cret" not in out.read_text()


def test_writes_yaml_to_stdout(
    capsys: pytest.CaptureFixture[str], asyncapi_validator: jsonschema.Draft7Validator
) -> None:
    assert main(["docs", "gen", "complex_app:app", "--title", "Orders"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert problems(asyncapi_validator, document) == []
    assert document["info"]["title"] == "Orders"


def test_a_listener_with_the_events_named_on_the_command_line(
    tmp_path: Path, asyncapi_validator: jsonschema.Draft7Validator
) -> None:
    out = tmp_path / "asyncapi.yaml"
    argv = ["docs", "gen", "complex_app:kafka", "--emits", "complex_app:OrderShipped"]
    assert main([*argv, "-o", str(out), "--app-version", "3.0"]) == 0
    document = yaml.safe_load(out.read_text())
    assert problems(asyncapi_validator, document) == []
    assert document["info"] == {"title": "complex_app:kafka", "version": "3.0"}
    assert "send_OrderShipped" in document["operations"]
    assert "receive_bill" in document["operations"]
    assert "receive_track" not in document["operations"]


def test_a_handler_group_is_documented_without_a_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["docs", "gen", "complex_app:shipping"]) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert "servers" not in document
    assert list(document["operations"]) == [
        "send_dead_letter_shop.region.shipments.dlq",
        "receive_track",
    ]


def test_something_else_is_an_error_that_says_what_was_expected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["docs", "gen", "complex_app:KAFKA_URL"]) == 1
    error = capsys.readouterr().err
    assert "expected an App, an EventListener" in error
    assert main(["docs", "gen", "complex_app:app", "--emits", "complex_app:Money"]) == 1
    assert "--emits must name an EventBase subclass" in capsys.readouterr().err


def test_the_demo_app_from_its_factory(
    tmp_path: Path, asyncapi_validator: jsonschema.Draft7Validator
) -> None:
    out = tmp_path / "demo.yaml"
    assert main(["docs", "gen", "dispytch.demo:build_app", "--factory", "-o", str(out)]) == 0
    document = yaml.safe_load(out.read_text())
    assert problems(asyncapi_validator, document) == []
    assert {"send_OrderPlaced", "receive_bill", "receive_notify"} <= set(document["operations"])


def test_a_factory_must_be_called_with_factory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "gen", "dispytch.demo:build_app"]) == 1
    assert "expected an App" in capsys.readouterr().err
    assert main(["docs", "gen", "complex_app:app", "--factory"]) == 1
    assert "--factory: complex_app:app is a App, not a callable" in capsys.readouterr().err
