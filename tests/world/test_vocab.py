"""The world's vocabulary (visual_rft/world/vocab.py): the base and few-shot class lists."""

from visual_rft import world as W


def test_fewshot_classes_are_finer_than_base_and_new_compositions_of_its_words():
    assert len(W.CLASSIFICATION_BASE) == 25 + 26 and len(W.CLASSIFICATION_FEWSHOT) == 24
    assert not set(W.CLASSIFICATION_BASE) & set(W.CLASSIFICATION_FEWSHOT)
    assert all(c.split(" ", 1)[1] in W.CLASSIFICATION_BASE for c in W.CLASSIFICATION_FEWSHOT)
    base_words = {w for c in W.CLASSIFICATION_BASE for w in c.split()}
    assert {"dark", "light"} <= base_words
    assert all(set(c.split()) <= base_words for c in W.CLASSIFICATION_FEWSHOT)
