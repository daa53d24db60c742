"""TFDS builder for a local folder of text documents (lives in its own package, as TFDS requires)."""

from bigmodels.data.text_corpus.text_corpus import TextCorpus, corpus_config

__all__ = ['TextCorpus', 'corpus_config']
