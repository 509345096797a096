"""FastAPI-style dependency injection for handlers."""

from dispytch.di.markers import Dependency, TopicSegment
from dispytch.di.plan import DependencyError

__all__ = ["Dependency", "DependencyError", "TopicSegment"]
