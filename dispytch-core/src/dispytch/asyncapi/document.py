"""The AsyncAPI 3.0 document of a service: what it emits, what it handles, and where.

Channels come from event topic templates and handler topic patterns, one message per
(topic, event type) whose payload is the envelope with the body's schema. Send
operations come from the events the service emits and from the dead letters its
listeners publish; receive operations from its handlers.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pydantic import TypeAdapter

from dispytch.asyncapi import bindings
from dispytch.asyncapi.addresses import (
    Address,
    Placeholder,
    channel_id,
    from_pattern,
    from_template,
    joined,
    safe_id,
)
from dispytch.asyncapi.schemas import BodySchemas, Mode
from dispytch.asyncapi.servers import server
from dispytch.dead_letter import DEAD_LETTER_EVENT, DeadLetter
from dispytch.di.plan import Call, EventParam, EventsParam, SegmentParam
from dispytch.emitter.emitter import EventEmitter
from dispytch.event import EventBase
from dispytch.listener.handler import ANY_EVENT, DEFAULT, Handler
from dispytch.listener.listener import EventListener
from dispytch.reply import (
    CORRELATION_ID,
    ERROR_REPLY_EVENT,
    REPLIES_TOPIC_PREFIX,
    REPLY_EVENT,
    REPLY_TO,
    ReplyError,
)

ASYNCAPI_VERSION = "3.0.0"
_ANY_BODY: TypeAdapter[Any] = TypeAdapter(Any)
_DEAD_LETTER_BODY: TypeAdapter[DeadLetter] = TypeAdapter(DeadLetter)
REPLIES_CHANNEL = "dispytch.replies"


@dataclass
class _Message:
    event_type: str
    title: str
    body: tuple[Any, Mode]
    summary: str | None = None
    kafka_key: dict[str, Any] | None = None


@dataclass
class _Channel:
    id: str
    address: Address
    names: list[str | None]
    messages: dict[str, _Message] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)
    """Parameter name -> what a handler converts it to (its type's name)."""
    protocols: set[str] = field(default_factory=set)
    """The binding protocols of the emitters and listeners using the channel."""

    def merge_names(self, names: list[str | None]) -> None:
        self.names = [mine or theirs for mine, theirs in zip(self.names, names, strict=True)]

    def message_id(self, event_type: str) -> str:
        return safe_id(event_type)


@dataclass
class _Participant:
    """An emitter or listener as the document sees it: its server, protocol and settings."""

    server: str | None
    protocol: str | None
    settings: Any


def asyncapi_document(
    app: Any = None,
    *,
    listeners: Iterable[EventListener] = (),
    emitters: Iterable[EventEmitter] = (),
    emits: Iterable[type[EventBase]] = (),
    title: str | None = None,
    version: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document (a JSON-ready dict) of `app` or of the parts given.

    `app` is anything with `listeners`, `emitters` and `emits` (the event classes it
    emits), such as `dispytch.App`; those given as keywords are added to its own.
    `title` and `version` default to the app's `title` and `version` attributes.
    """
    found_listeners, found_emitters, found_emits = list(listeners), list(emitters), list(emits)
    if app is not None:
        found_listeners[:0] = _values(getattr(app, "listeners", ()))
        found_emitters[:0] = _values(getattr(app, "emitters", ()))
        found_emits[:0] = _values(getattr(app, "emits", ()))
    builder = _Builder()
    builder.add_emitters(found_emitters, found_emits)
    for listener in found_listeners:
        builder.add_listener(listener)
    info: dict[str, Any] = {
        "title": title or getattr(app, "title", None) or "Dispytch service",
        "version": version or getattr(app, "version", None) or "0.0.0",
    }
    if description or getattr(app, "description", None):
        info["description"] = description or app.description
    return builder.document(info, _content_type([*found_emitters, *found_listeners]))


def _values(collection: Any) -> list[Any]:
    return list(collection.values() if isinstance(collection, Mapping) else collection)


def _content_type(parts: list[EventEmitter | EventListener]) -> str:
    for part in parts:
        found = getattr(part.serializer, "content_type", None)
        if isinstance(found, str):
            return found
    return "application/json"


class _Builder:
    def __init__(self) -> None:
        self.bodies = BodySchemas()
        self.channels: dict[tuple[str | None, ...], _Channel] = {}
        self.servers: dict[str, dict[str, Any]] = {}
        self.plain_servers: dict[str, dict[str, Any]] = {}
        """The servers as compared to find one already listed: without security."""
        self.security: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.receivers: list[tuple[str, _Channel, str, _Participant, Listening]] = []
        self.queues: dict[str, tuple[_Participant, str, list[str]]] = {}
        self.replies: dict[str, _Message] = {}
        """Reply messages by the id of the receive operation answering with them."""
        self.amqp_settings: Any = None
        """The settings of the first RabbitMQ participant: its exchange carries every topic."""

    # -- participants and servers -----------------------------------------------------------

    def participant(self, part: EventEmitter | EventListener) -> _Participant:
        backend = part.backend
        if backend is None:
            return _Participant(None, None, None)
        settings = part.backend_settings
        found, scheme = server(backend, settings)
        name = backend.name
        for suffix in range(2, 1000):
            if self.plain_servers.setdefault(name, found) == found:
                break
            name = f"{backend.name}-{suffix}"
        if scheme is not None:
            self.security[name] = scheme
            found = {**found, "security": [{"$ref": f"#/components/securitySchemes/{name}"}]}
        self.servers[name] = found
        protocol = bindings.protocol_of(backend.name)
        if protocol == "amqp" and self.amqp_settings is None:
            self.amqp_settings = settings
        return _Participant(name, protocol, settings)

    # -- what is emitted --------------------------------------------------------------------

    def add_emitters(self, emitters: list[EventEmitter], emits: list[type[EventBase]]) -> None:
        participants = [self.participant(emitter) for emitter in emitters]
        protocols = {p.protocol: p for p in participants if p.protocol}
        for event_class in emits:
            template = getattr(event_class, "__topic__", None)
            if not template:
                raise ValueError(
                    f"{event_class.__qualname__} is listed as emitted but has no __topic__"
                )
            channel = self.channel(from_template(template))
            channel.protocols.update(p for p in protocols if p)
            event_type = event_class.event_type()
            message = channel.messages.get(channel.message_id(event_type))
            if message is None:
                body = self.bodies.add(event_class, TypeAdapter(event_class), "serialization")
                message = channel.messages[channel.message_id(event_type)] = _Message(
                    event_type, event_class.__name__, body, _summary(event_class)
                )
            if "kafka" in protocols:
                message.kafka_key = bindings.kafka_message(event_class)
            operation: dict[str, Any] = {
                "action": "send",
                "channel": _ref("channels", channel.id),
                "messages": [
                    _ref("channels", channel.id, "messages", channel.message_id(event_type))
                ],
                "summary": f"Emits {event_class.__name__} ({event_type})",
            }
            operation_bindings = _operation_bindings(protocols, group=None, action="send")
            if operation_bindings:
                operation["bindings"] = operation_bindings
            self.operations[self.unique_operation(f"send_{event_class.__name__}")] = operation

    # -- what is handled --------------------------------------------------------------------

    def add_listener(self, listener: EventListener) -> None:
        participant = self.participant(listener)
        group = listener.group
        handled: list[str] = []
        for handler in listener.handlers:
            address = from_pattern(handler.pattern)
            channel = self.channel(address)
            channel.segments.update(_segment_types(handler.plan))
            if participant.protocol:
                channel.protocols.add(participant.protocol)
            event_type = handler.spec.event
            message_id = channel.message_id(event_type)
            if event_type != ANY_EVENT and message_id not in channel.messages:
                body = self.bodies.add(id(handler), _body_adapter(handler.plan), "validation")
                channel.messages[message_id] = _Message(event_type, event_type, body)
            operation_id = self.unique_operation(f"receive_{handler.spec.func.__name__}")
            self.receivers.append(
                (operation_id, channel, event_type, participant, Listening(handler, group))
            )
            handled.append(operation_id)
            self.add_reply(operation_id, handler)
            template = handler.spec.dead_letter_topic
            if template is DEFAULT:
                template = listener.dead_letter_topic
            if template is not None:
                self.add_dead_letters(address, str(template), participant)
        if participant.protocol == "amqp" and group:
            name = bindings.amqp_queue_name(participant.settings, group)
            self.queues[name] = (participant, group, handled)

    def add_reply(self, operation_id: str, handler: Handler) -> None:
        """A handler returning a value answers requests: its reply goes to the requester's
        replies topic, named by the request's `dispytch-reply-to` header."""
        returned = _reply_type(handler)
        if returned is None:
            return
        if not self.replies:
            body = self.bodies.add(ReplyError, TypeAdapter(ReplyError), "serialization")
            self.replies["error"] = _Message(
                ERROR_REPLY_EVENT, "ReplyError", body, _summary(ReplyError)
            )
        body = self.bodies.add(("reply", id(handler)), TypeAdapter(returned), "serialization")
        self.replies[operation_id] = _Message(
            REPLY_EVENT, f"Reply of {handler.spec.func.__name__}", body
        )

    def add_dead_letters(self, address: Address, template: str, participant: _Participant) -> None:
        pieces: list[Any] = []
        for piece in from_template(template).pieces:
            if isinstance(piece, Placeholder) and piece.name == "topic":
                pieces.extend(address.pieces)
            else:
                pieces.append(piece)
        channel = self.channel(joined(pieces))
        if participant.protocol:
            channel.protocols.add(participant.protocol)
        message_id = channel.message_id(DEAD_LETTER_EVENT)
        if message_id not in channel.messages:
            body = self.bodies.add(DeadLetter, _DEAD_LETTER_BODY, "serialization")
            channel.messages[message_id] = _Message(
                DEAD_LETTER_EVENT, "DeadLetter", body, _summary(DeadLetter)
            )
        operation_id = f"send_dead_letter_{channel.id}"
        if operation_id not in self.operations:
            operation: dict[str, Any] = {
                "action": "send",
                "channel": _ref("channels", channel.id),
                "messages": [_ref("channels", channel.id, "messages", message_id)],
                "summary": "Dead letters: events that could not be handled, with the reason",
            }
            found = _operation_bindings(
                {participant.protocol: participant} if participant.protocol else {},
                group=None,
                action="send",
            )
            if found:
                operation["bindings"] = found
            self.operations[operation_id] = operation

    # -- channels and operations ------------------------------------------------------------

    def channel(self, address: Address) -> _Channel:
        found = self.channels.get(address.shape)
        if found is None:
            text = address.render(_parameter_names(address.names))
            taken = {c.id for c in self.channels.values()}
            base = channel_id(text)
            cid = base
            for suffix in range(2, 1000):
                if cid not in taken:
                    break
                cid = f"{base}_{suffix}"
            found = self.channels[address.shape] = _Channel(cid, address, address.names)
        else:
            found.merge_names(address.names)
        return found

    def unique_operation(self, wanted: str) -> str:
        base = safe_id(wanted)
        name = base
        for suffix in range(2, 10_000):
            if name not in self.operations and all(r[0] != name for r in self.receivers):
                break
            name = f"{base}_{suffix}"
        return name

    def receive_operations(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for operation_id, channel, event_type, participant, listening in self.receivers:
            if event_type == ANY_EVENT:
                if not channel.messages:
                    body = self.bodies.add(id(listening.handler), _ANY_BODY, "validation")
                    channel.messages["any"] = _Message("*", "Any event", body)
                message_ids = list(channel.messages)
            else:
                message_ids = [channel.message_id(event_type)]
            operation: dict[str, Any] = {
                "action": "receive",
                "channel": _ref("channels", channel.id),
                "messages": [_ref("channels", channel.id, "messages", m) for m in message_ids],
            }
            summary = _summary(listening.handler.spec.func)
            if summary:
                operation["summary"] = summary
            operation["description"] = f"Handled by `{listening.handler.name}`" + (
                f" in consumer group `{listening.group}`." if listening.group else "."
            )
            found = _operation_bindings(
                {participant.protocol: participant} if participant.protocol else {},
                group=listening.group,
                action="receive",
            )
            if found:
                operation["bindings"] = found
            if listening.group:
                operation["x-dispytch-group"] = listening.group
            if operation_id in self.replies:
                operation["reply"] = {
                    "address": {
                        "location": f"$message.header#/{REPLY_TO}",
                        "description": "The requester's replies topic, from the request's header",
                    },
                    "channel": _ref("channels", REPLIES_CHANNEL),
                    "messages": [
                        _ref("channels", REPLIES_CHANNEL, "messages", message_id)
                        for message_id in (operation_id, "error")
                    ],
                }
            yield operation_id, operation

    # -- the document -----------------------------------------------------------------------

    def document(self, info: dict[str, Any], content_type: str) -> dict[str, Any]:
        operations = dict(self.operations)
        operations.update(self.receive_operations())  # may add "any" messages to channels
        channels = {c.id: self.render_channel(c) for c in self.channels.values()}
        if self.replies:
            channels[REPLIES_CHANNEL] = {
                "address": None,
                "description": f"Each requester's own replies topic (`{REPLIES_TOPIC_PREFIX}"
                "<uuid>`), named by its requests; a reply carries the request's id in the "
                f"`{CORRELATION_ID}` header.",
                "messages": {i: _render_message(m) for i, m in self.replies.items()},
            }
        for name, (participant, group, handled) in self.queues.items():
            channels[self.unique_channel(channels, name)] = self.render_queue(
                participant, group, handled, operations
            )
        document: dict[str, Any] = {"asyncapi": ASYNCAPI_VERSION, "info": info}
        document["defaultContentType"] = content_type
        if self.servers:
            document["servers"] = self.servers
        document["channels"] = channels
        document["operations"] = operations
        components: dict[str, Any] = {}
        for channel in channels.values():
            for message in channel.get("messages", {}).values():
                if "payload" in message:
                    message["payload"]["properties"]["body"] = self.bodies.schema(
                        message["payload"]["properties"]["body"]["x-body"]
                    )
        if self.bodies.components:
            components["schemas"] = self.bodies.components
        if self.security:
            components["securitySchemes"] = self.security
        if components:
            document["components"] = components
        return document

    def render_channel(self, channel: _Channel) -> dict[str, Any]:
        names = _parameter_names(channel.names)
        rendered: dict[str, Any] = {"address": channel.address.render(names)}
        if names:
            rendered["parameters"] = {
                name: {"description": _parameter_description(name, channel.segments.get(name))}
                for name in dict.fromkeys(names)
            }
        rendered["messages"] = {
            message_id: _render_message(message) for message_id, message in channel.messages.items()
        }
        if "amqp" in channel.protocols and self.amqp_settings is not None:
            rendered["bindings"] = {"amqp": bindings.amqp_exchange(self.amqp_settings)}
        return rendered

    def render_queue(
        self,
        participant: _Participant,
        group: str,
        handled: list[str],
        operations: dict[str, Any],
    ) -> dict[str, Any]:
        messages: dict[str, Any] = {}
        for operation_id in handled:
            for reference in operations[operation_id]["messages"]:
                pointer = reference["$ref"]
                messages[safe_id(pointer.removeprefix("#/channels/"))] = {"$ref": pointer}
        return {
            "address": bindings.amqp_queue_name(participant.settings, group),
            "description": f"The queue of consumer group `{group}`, bound to the exchange "
            "with its handlers' topic patterns.",
            "messages": messages,
            "bindings": {"amqp": bindings.amqp_queue(participant.settings, group)},
        }

    @staticmethod
    def unique_channel(channels: dict[str, Any], wanted: str) -> str:
        base = name = safe_id(wanted)
        for suffix in range(2, 1000):
            if name not in channels:
                break
            name = f"{base}_{suffix}"
        return name


@dataclass(frozen=True)
class Listening:
    handler: Handler
    group: str | None


def _render_message(message: _Message) -> dict[str, Any]:
    rendered: dict[str, Any] = {"name": message.event_type, "title": message.title}
    if message.summary:
        rendered["summary"] = message.summary
    rendered["payload"] = _envelope(message.event_type, message.body)
    if message.kafka_key:
        rendered["bindings"] = {"kafka": message.kafka_key}
    return rendered


def _envelope(event_type: str, body: tuple[Any, Mode]) -> dict[str, Any]:
    kind: dict[str, Any] = {"type": "string"}
    if event_type != "*":
        kind["const"] = event_type
    return {
        "type": "object",
        "description": "The Dispytch envelope (the wire format of Dispytch 0.10).",
        "required": ["id", "type", "body", "timestamp"],
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "The event id."},
            "type": {**kind, "description": "The event type."},
            "body": {"x-body": body},  # replaced by the body's schema once all are built
            "timestamp": {
                "type": "integer",
                "description": "When the event was emitted, in milliseconds since the epoch.",
            },
        },
    }


def _operation_bindings(
    protocols: Mapping[str, _Participant], *, group: str | None, action: str
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if "kafka" in protocols:
        found["kafka"] = bindings.kafka_operation(protocols["kafka"].settings, group)
    if "amqp" in protocols:
        settings = protocols["amqp"].settings
        found["amqp"] = (
            bindings.amqp_send(settings) if action == "send" else bindings.amqp_receive()
        )
    nats = bindings.nats_receive(group) if "nats" in protocols and action == "receive" else None
    if nats:
        found["nats"] = nats
    return found


def _parameter_names(names: list[str | None]) -> list[str]:
    return [name or f"wildcard{index}" for index, name in enumerate(names, start=1)]


def _parameter_description(name: str, type_name: str | None) -> str:
    if name.startswith("wildcard") and type_name is None:
        return "Any one topic segment (a `*` in a handler's topic pattern)."
    found = f"The `{name}` segment of the topic"
    return f"{found}, read by handlers as `{type_name}`." if type_name else f"{found}."


def _body_adapter(plan: Call) -> TypeAdapter[Any]:
    for source in _sources(plan):
        if isinstance(source, EventParam | EventsParam):  # one event, or a batch's
            return source.body or _ANY_BODY
    return _ANY_BODY


def _segment_types(plan: Call) -> dict[str, str]:
    found: dict[str, str] = {}
    for source in _sources(plan):
        if isinstance(source, SegmentParam):
            kind = getattr(source.adapter, "_type", None)
            found.setdefault(source.segment, getattr(kind, "__name__", None) or str(kind))
    return found


def _reply_type(handler: Handler) -> Any:
    """What the handler returns to a request, or None when it answers none (it returns
    None, or is a batch handler)."""
    if any(isinstance(source, EventsParam) for source in _sources(handler.plan)):
        return None
    try:
        returned = get_type_hints(handler.spec.func).get("return")
    except (NameError, TypeError):
        return None
    return None if returned in (None, type(None)) else returned


def _sources(plan: Call) -> Iterator[Any]:
    for source in plan.params.values():
        yield source
        if isinstance(source, Call):
            yield from _sources(source)


def _summary(obj: Any) -> str | None:
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else inspect.getdoc(obj)
    if not doc:
        return None
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}
