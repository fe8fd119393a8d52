"""The triggers' log: one logger per trigger class, not one per trigger."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from airflow.utils.log.logging_mixin import LoggingMixin


class ClassLogMixin:
    """
    ``self.log`` of a trigger: Airflow's logger of the same name as ``LoggingMixin`` gives it (the class's
    module and name), made once per class and shared by its triggers. Airflow 3 builds a structlog logger
    per instance (about ten objects that live as long as the trigger); ten thousand waiting triggers would
    keep ten thousand copies of one logger. The triggerer routes a line to its trigger through the log
    context it binds around each trigger, not through the logger object, so a shared one logs the same.
    """

    @property
    def log(self) -> Any:
        cls = type(self)
        logger = cls.__dict__.get("_linkmsg_class_log")
        if logger is None:
            holder = SimpleNamespace(
                _log=None,
                _log_config_logger_name=getattr(self, "_log_config_logger_name", None),
                _logger_name=getattr(self, "_logger_name", None),
            )
            logger = LoggingMixin._get_log(holder, cls)
            cls._linkmsg_class_log = logger
        return logger
