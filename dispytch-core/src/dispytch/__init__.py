"""Dispytch: typed events, emitted and handled through pluggable backends."""

from dispytch.app import App
from dispytch.dead_letter import DeadLetter
from dispytch.di import Dependency, DependencyError, TopicSegment
from dispytch.emitter.emitter import EventEmitter
from dispytch.emitter.producer import OutgoingMessage, Producer, ProducerTimeout
from dispytch.emitter.request_reply import RequestFailed, RequestTimeout
from dispytch.event import Event, EventBase
from dispytch.listener.batch import Batch, BatchFailed
from dispytch.listener.consumer import Consumer, Message
from dispytch.listener.group import HandlerGroup
from dispytch.listener.handler import ANY_EVENT
from dispytch.listener.listener import EventListener
from dispytch.middleware import Context, EmitContext
from dispytch.retry import RetryPolicy

__all__ = [
    "ANY_EVENT",
    "App",
    "Batch",
    "BatchFailed",
    "Consumer",
    "Context",
    "DeadLetter",
    "Dependency",
    "DependencyError",
    "EmitContext",
    "Event",
    "EventBase",
    "EventEmitter",
    "EventListener",
    "HandlerGroup",
    "Message",
    "OutgoingMessage",
    "Producer",
    "ProducerTimeout",
    "RequestFailed",
    "RequestTimeout",
    "RetryPolicy",
    "TopicSegment",
]
