"""Cleaning documentation sources into prose."""

import pytest

from bigmodels.data import prose
from bigmodels.errors import UserError

RST = """\
:mod:`functools` --- Higher-order functions
===========================================

.. module:: functools
   :synopsis: Tools.

The :func:`~functools.partial` helper calls a function with `some args <x>`_.

.. function:: cache(user_function)

   Simple lightweight unbounded function cache.

   For example::

      @cache
      def f(n): return n

   >>> f(3)
   3

* First item of a list.
* Second item with :pep:`8`.

.. code-block:: python

   print("never prose")

.. include:: /etc/passwd
"""


def test_rst_keeps_titles_paragraphs_and_list_items():
  paragraphs = prose.rst_to_paragraphs(RST)
  assert paragraphs[0] == 'functools --- Higher-order functions'
  assert 'The partial helper calls a function with some args.' in paragraphs
  assert 'Simple lightweight unbounded function cache.' in paragraphs
  assert 'For example:' in paragraphs
  assert 'First item of a list.' in paragraphs
  assert any(p.startswith('Second item with PEP 8') for p in paragraphs)


def test_rst_drops_markup_code_and_includes():
  text = '\n'.join(prose.rst_to_paragraphs(RST))
  for junk in ('===', '.. ', '::', 'def f', '>>>', 'never prose', 'synopsis', 'root:'):
    assert junk not in text


def test_plain_text_and_markdown_paragraphs():
  assert prose.plain_to_paragraphs('# Title\n\nOne\nline.\n\n```\ncode\n```\n\nTwo.') == [
      'Title', 'One line.', 'Two.']


def test_non_utf8_file_is_a_user_error(tmp_path):
  bad = tmp_path / 'bad.txt'
  bad.write_bytes(b'caf\xe9 latin-1 text')
  with pytest.raises(UserError, match=r'bad\.txt is not valid UTF-8'):
    prose.clean_file((str(bad), str(tmp_path)))


def test_cleaning_does_not_depend_on_earlier_documents():
  doc = 'Introduced in :pep:`590` for speed, see :foo-role:`x`.\n'
  first = prose.rst_to_paragraphs(doc)
  prose.rst_to_paragraphs('Upper-case roles: :PEP:`8` and :Foo-Role:`y`.\n\n.. NOTE::\n\n   Hi.\n')
  assert prose.rst_to_paragraphs(doc) == first == ['Introduced in PEP 590 for speed, see x.']
