"""A backend registration: everything core needs to know to use a backend by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dispytch.backends.capabilities import Capabilities
from dispytch.backends.settings import BackendSettings
from dispytch.emitter.producer import Producer
from dispytch.listener.consumer import Consumer
from dispytch.routing import TopicPattern


@dataclass(frozen=True)
class Subscription:
    """What a listener asks a backend consumer for.

    `group` is the one scaling concept: listeners in one group compete for
    messages, listeners in different groups each get every message. `patterns`
    come from the listener's handlers, so topics are never listed twice.
    """

    group: str
    patterns: tuple[TopicPattern, ...]


@dataclass(frozen=True)
class Backend:
    """A backend as registered through the `dispytch_register_backends` hook.

    `create_producer(settings)` and `create_consumer(settings, subscription)` build
    the seam objects; `settings` is the pydantic model their settings are checked
    against; `schemes` are the URL schemes that select it besides its name. When what
    the backend offers depends on its settings (a mode, say), `capabilities_by_settings`
    says what given settings offer; `create_reply_consumer` is how an emitter receives
    replies to its requests, when the backend has its own way. `distribution` and
    `version` are filled in by discovery.
    """

    name: str
    settings: type[BackendSettings]
    create_producer: Callable[[Any], Producer]
    create_consumer: Callable[[Any, Subscription], Consumer]
    capabilities: Capabilities = field(default_factory=Capabilities)
    schemes: tuple[str, ...] = ()
    install: str | None = None
    """The pip requirement that provides this backend, for error messages."""
    description: str = ""
    capabilities_by_settings: Callable[[Any], Capabilities] | None = None
    create_reply_consumer: Callable[[Any, str], Consumer] | None = None
    """Optional: `create_reply_consumer(settings, topic)`, the consumer of one emitter's
    replies to its requests, sent to `topic`. Without it the emitter consumes `topic` in a
    consumer group of its own; offer it to receive replies some better way (a queue the
    broker deletes when the emitter goes, say)."""
    distribution: str | None = None
    version: str | None = None

    def capabilities_for(self, settings: BackendSettings) -> Capabilities:
        """What the backend offers when configured with `settings`."""
        if self.capabilities_by_settings is None:
            return self.capabilities
        return self.capabilities_by_settings(settings)
