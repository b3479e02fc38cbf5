"""Classification: the task and its from-scratch models (imported here so that discovery registers both)."""

from zrenie.tasks.classify import model, task  # noqa: F401
