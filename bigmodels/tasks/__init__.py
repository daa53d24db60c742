"""Task families. `get_task(config)` returns the Task named by `config.task`."""

from __future__ import annotations

from typing import Any

from bigmodels.errors import UserError
from bigmodels.tasks.base import Task


def _registry() -> dict[str, type[Task]]:
  from bigmodels.tasks.causal_lm import CausalLMTask
  from bigmodels.tasks.classification import ClassificationTask
  from bigmodels.tasks.mlm import MaskedLMTask
  from bigmodels.tasks.span_corruption import SpanCorruptionTask
  from bigmodels.tasks.text_classification import TextClassificationTask
  return {'classification': ClassificationTask, 'mlm': MaskedLMTask,
          'causal_lm': CausalLMTask, 'span_corruption': SpanCorruptionTask,
          'text_classification': TextClassificationTask}


def get_task(config: Any) -> Task:
  """Instantiates the task named by config.task."""
  registry = _registry()
  if config.task not in registry:
    raise UserError(f'unknown task {config.task!r}: choose one of {", ".join(registry)}')
  return registry[config.task](config)
