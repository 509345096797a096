"""Events: `EventBase` declares what is emitted, `Event[Body]` is what a handler receives."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field
from typing_extensions import Self

from dispytch.serialization.envelope import new_event_id

if TYPE_CHECKING:
    from dispytch.listener.consumer import Message

BodyT = TypeVar("BodyT")


class EventTopicError(ValueError):
    """An event's `__topic__` template cannot be formatted from its fields."""


class EventBase(BaseModel):
    """Base class for events a service emits.

    Set `__topic__` (a template formatted from the event's fields, such as
    `"users.{user_id}"`), `__event_type__`, and optionally `__backend_config__`,
    a backend-specific pydantic model. `__backend_config__` may also be given to
    the constructor or assigned on an instance, overriding the class's.

    Every event has an `id`: a fresh random UUID string unless given (`id="..."`) or
    assigned. It travels as the envelope's id, not in the body (so `model_dump()` leaves
    it out), and the handler's `Event.id` is the same string. `id` is reserved: an event
    class declaring its own `id` field is refused when it is defined.
    """

    __topic__: ClassVar[str]
    __event_type__: ClassVar[str]
    __backend_config__: ClassVar[BaseModel | None] = None

    id: str = Field(default_factory=new_event_id, exclude=True)
    """The event's id, written as the envelope's `id`; not part of the body."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "id" in inspect.get_annotations(cls):
            raise TypeError(
                f"{cls.__qualname__} declares a field named 'id', which EventBase reserves for "
                "the event's id (a str sent as the envelope's id, not in the body). Rename the "
                "field (user_id, order_id ...); to choose an event's id, pass id=... when "
                "creating the event"
            )
        super().__init_subclass__(**kwargs)

    def __init__(self, /, **data: Any) -> None:
        config = data.pop("__backend_config__", None)
        super().__init__(**data)
        if config is not None:
            self.with_backend_config(config)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__backend_config__":
            self.with_backend_config(value)
        else:
            super().__setattr__(name, value)

    @classmethod
    def event_type(cls) -> str:
        """The type written to the wire: `__event_type__`, or the class name."""
        return getattr(cls, "__event_type__", cls.__name__)

    def with_backend_config(self, config: BaseModel | None) -> Self:
        """Set this instance's backend config and return the event (a typed alternative to
        passing `__backend_config__=` to the constructor)."""
        object.__setattr__(self, "__backend_config__", config)  # an instance attribute, not a field
        return self

    def backend_config(self) -> BaseModel | None:
        """This instance's backend config, falling back to the class's."""
        return self.__backend_config__

    def topic(self) -> str:
        """`__topic__` formatted from this event's fields."""
        template: str | None = getattr(type(self), "__topic__", None)
        if not template:
            raise EventTopicError(f"{type(self).__name__} has no __topic__; set it on the class")
        if "{" not in template:
            return template
        try:
            return template.format_map(vars(self))  # a model keeps its field values in __dict__
        except (KeyError, AttributeError, IndexError) as exc:
            name = type(self).__name__
            raise EventTopicError(
                f"{name}.__topic__ {template!r} refers to {exc}, which {name} does not have; "
                f"its fields are {sorted(type(self).model_fields)}"
            ) from None


@dataclass(slots=True)
class Event(Generic[BodyT]):
    """An event as a handler receives it: the decoded envelope plus message metadata.

    `headers`, `key`, `attempt` (delivery count) and `metadata` (backend facts such
    as partition and offset) come from the backend's message.
    """

    id: str
    type: str
    topic: str
    body: BodyT
    timestamp: int
    message: Message = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return self.message.headers

    @property
    def key(self) -> str | None:
        return self.message.key

    @property
    def attempt(self) -> int:
        return self.message.attempt

    @property
    def metadata(self) -> dict[str, Any]:
        return self.message.metadata
