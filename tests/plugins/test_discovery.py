"""Entry-point discovery: failures, conflicts and the environment switches, with real
distributions laid out on sys.path (a `.dist-info` folder is all importlib.metadata needs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dispytch.backends import BackendError, BackendRegistry

Installer = Callable[[str, dict[str, str], dict[str, str]], None]
Source = Callable[..., str]


def test_a_plugin_that_fails_to_import_is_reported_and_others_still_work(
    install: Installer, plugin_source: Source
) -> None:
    install(
        "dispytch-broken",
        {"broken": "broken_plugin"},
        {"broken_plugin": "import no_such_dependency"},
    )
    install("dispytch-fine", {"fine": "fine_plugin"}, {"fine_plugin": plugin_source(name="fine")})
    found = BackendRegistry.discover()
    [failure] = [f for f in found.failures if f.entry_point == "broken"]
    assert (failure.distribution, failure.version) == ("dispytch-broken", "1.2.3")
    assert "no_such_dependency" in failure.error
    assert found.get("fine").distribution == "dispytch-fine"
    assert found.get("memory").distribution == "dispytch-core"
    with pytest.raises(BackendError, match=r"dispytch-broken 1\.2\.3 failed to load"):
        found.get("broken")


def test_two_plugins_claiming_one_name_is_an_error_naming_both(
    install: Installer, plugin_source: Source
) -> None:
    install("dispytch-one", {"one": "one_plugin"}, {"one_plugin": plugin_source(name="twin")})
    install("dispytch-two", {"two": "two_plugin"}, {"two_plugin": plugin_source(name="twin")})
    found = BackendRegistry.discover()
    with pytest.raises(BackendError, match="claimed by") as error:
        found.get("twin")
    assert "dispytch-one" in str(error.value)
    assert "dispytch-two" in str(error.value)
    assert found.get("memory").name == "memory", "other backends are unaffected"


def test_autoload_can_be_disabled(
    install: Installer, plugin_source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    install("dispytch-fine", {"fine": "fine_plugin"}, {"fine_plugin": plugin_source(name="fine")})
    monkeypatch.setenv("DISPYTCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    found = BackendRegistry.discover()
    assert {b.name for b in found} == {"memory"}, "builtin backends stay"


def test_autoload_can_be_restricted_to_an_allow_list(
    install: Installer, plugin_source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    install("dispytch-fine", {"fine": "fine_plugin"}, {"fine_plugin": plugin_source(name="fine")})
    install(
        "dispytch-other", {"other": "other_plugin"}, {"other_plugin": plugin_source(name="other")}
    )
    monkeypatch.setenv("DISPYTCH_PLUGINS", "fine")
    names = {b.name for b in BackendRegistry.discover()}
    assert "fine" in names
    assert "other" not in names
    monkeypatch.setenv("DISPYTCH_PLUGINS", "dispytch-other")
    names = {b.name for b in BackendRegistry.discover()}
    assert "other" in names, "distribution names work in the allow-list too"
    assert "fine" not in names


def test_unknown_name_lists_installed_suggests_and_names_the_package() -> None:
    found = BackendRegistry.discover(autoload=False)
    with pytest.raises(BackendError) as error:
        found.get("kafak")
    message = str(error.value)
    assert "Installed backends: memory" in message
    assert "Did you mean 'kafka'?" in message
    assert 'pip install "dispytch-core[kafka]"' in message


def test_registration_carries_distribution_version_and_capabilities() -> None:
    memory = BackendRegistry.discover(autoload=False).get("memory")
    assert memory.distribution == "dispytch-core"
    assert memory.version
    assert memory.capabilities.consumer_groups
    assert memory.settings.__name__ == "MemorySettings"
