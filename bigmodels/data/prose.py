"""Turn documentation sources (reStructuredText, Markdown, plain text) into clean prose.

reStructuredText (including Sphinx sources such as the Python documentation) is parsed with
docutils; only titles, paragraphs and list-item paragraphs are kept. Section underlines,
directive syntax, signatures, literal code blocks and doctests are dropped. Unknown Sphinx roles
and directives are registered on the fly as harmless handlers; file inclusion and raw content are
disabled, so parsing a document never reads other files or runs anything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import docutils.core
import docutils.nodes as nodes
import docutils.utils
from docutils.parsers.rst import Directive, directives, roles
from docutils.parsers.rst.languages import en as rst_en

from bigmodels.errors import UserError

# Directives whose body is code, metadata or navigation, never prose.
_DROPPED_DIRECTIVES = frozenset({
    'code', 'code-block', 'sourcecode', 'highlight', 'literalinclude', 'include', 'raw',
    'doctest', 'testcode', 'testoutput', 'testsetup', 'testcleanup', 'productionlist',
    'index', 'toctree', 'module', 'currentmodule', 'moduleauthor', 'sectionauthor',
    'codeauthor', 'image', 'figure', 'csv-table', 'tabularcolumns', 'literal-block',
    'audit-event-table', 'program', 'opcode', 'pdbcommand', 'cmdoption', 'option',
    'envvar', 'describe', 'availability', 'audit-event', 'c:macro', 'productionlist',
    'glossary-only', 'toctree-only', 'math', 'graphviz',
})

_ROLE_RE = re.compile(r':((?:(?!_)\w)+(?:[-.+:](?:(?!_)\w)+)*):`')
_DIRECTIVE_RE = re.compile(r'^\s*\.\.\s+([\w][\w:.+-]*)::', re.MULTILINE)
_SPACES = re.compile(r'\s+')
_SUBSTITUTION = re.compile(r'\|([\w-]+)\|')


class _AnyOptions(dict):
  """An option_spec that accepts every option and ignores its value."""

  def __contains__(self, key: object) -> bool:
    return True

  def __getitem__(self, key: str) -> Any:
    return directives.unchanged


class _ProseDirective(Directive):
  """Keeps a directive's body (note, function docs, versionadded ...) as nested prose."""

  has_content = True
  optional_arguments = 1
  final_argument_whitespace = True
  option_spec = _AnyOptions()

  def run(self) -> list[nodes.Node]:
    container = nodes.container()
    if self.content:
      self.state.nested_parse(self.content, self.content_offset, container)
    return [container]


class _DroppedDirective(_ProseDirective):
  """Drops a directive and its body entirely."""

  def run(self) -> list[nodes.Node]:
    return []


def _role_text(text: str) -> str:
  """The text a Sphinx cross-reference role displays: `title <target>` -> title, `~a.b` -> b."""
  text = docutils.utils.unescape(text)
  match = re.match(r'^(.*?)\s*<[^<>]*>$', text, re.DOTALL)
  if match and match.group(1):
    return match.group(1)
  text = text.lstrip('!')
  if text.startswith('~'):
    text = text[1:].rsplit('.', 1)[-1]
  return text


def _generic_role(name, rawtext, text, lineno, inliner, options=None, content=None):
  del name, lineno, inliner, options, content
  return [nodes.literal(rawtext, _role_text(text))], []


_registered: set[str] = set()


def _register_extensions(source: str) -> None:
  """Registers a harmless handler for every role and directive docutils does not know.

  Names are matched case-insensitively, as docutils does, and docutils' own roles and
  directives (e.g. `pep`, `note`) are never replaced, so the result for one document does not
  depend on which documents were parsed before it in the same process.
  """
  for name in {n.lower() for n in _ROLE_RE.findall(source)} - _registered:
    _registered.add(name)
    if name not in roles._role_registry and name not in rst_en.roles:
      roles.register_local_role(name, _generic_role)
  for name in _DROPPED_DIRECTIVES - _registered:
    directives.register_directive(name, _DroppedDirective)
    _registered.add(name)
  for name in {n.lower() for n in _DIRECTIVE_RE.findall(source)} - _registered:
    _registered.add(name)
    if name not in directives._directive_registry and name not in rst_en.directives:
      directives.register_directive(name, _ProseDirective)


_SETTINGS = {
    'report_level': 5,
    'halt_level': 5,
    'warning_stream': False,
    'file_insertion_enabled': False,
    'raw_enabled': False,
    'input_encoding': 'utf-8',
    'syntax_highlight': 'none',
    'traceback': True,
}

_SKIPPED_ANCESTORS = (nodes.literal_block, nodes.doctest_block, nodes.comment,
                      nodes.system_message, nodes.raw, nodes.substitution_definition)


def rst_to_paragraphs(source: str) -> list[str]:
  """Parses reStructuredText and returns its titles and paragraphs as single-line strings."""
  _register_extensions(source)
  source = _SUBSTITUTION.sub(r'\1', source)
  doctree = docutils.core.publish_doctree(source, settings_overrides=_SETTINGS)
  paragraphs = []
  for node in doctree.findall(lambda n: isinstance(n, (nodes.title, nodes.paragraph))):
    parent, skip = node.parent, False
    while parent is not None:
      if isinstance(parent, _SKIPPED_ANCESTORS):
        skip = True
        break
      parent = parent.parent
    if skip:
      continue
    text = _SPACES.sub(' ', node.astext()).strip()
    if text:
      paragraphs.append(text)
  return paragraphs


def plain_to_paragraphs(source: str) -> list[str]:
  """Splits plain text or Markdown into paragraphs at blank lines; drops fenced code blocks."""
  source = re.sub(r'```.*?```', '', source, flags=re.DOTALL)
  paragraphs = []
  for block in re.split(r'\n\s*\n', source):
    text = _SPACES.sub(' ', block).strip().lstrip('#').strip()
    if text:
      paragraphs.append(text)
  return paragraphs


def file_to_prose(name: str, source: str) -> str:
  """Cleans one document into prose: one paragraph per line."""
  if name.endswith(('.rst', '.rst.txt')):
    paragraphs = rst_to_paragraphs(source)
  else:
    paragraphs = plain_to_paragraphs(source)
  return '\n'.join(paragraphs)


def clean_file(path_and_root: tuple[str, str]) -> tuple[str, str]:
  """Reads one UTF-8 document and returns (path relative to root, prose)."""
  path, root = path_and_root
  try:
    source = Path(path).read_text(encoding='utf-8')
  except UnicodeDecodeError as e:
    raise UserError(f'corpus file {path} is not valid UTF-8 ({e.reason} at byte {e.start}): '
                    're-encode it as UTF-8 or remove it from the corpus folder') from None
  return os.path.relpath(path, root), file_to_prose(path, source)
