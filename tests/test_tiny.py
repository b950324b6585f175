"""The tiny models the mechanics tests build are the same in every process."""

import json
import subprocess
import sys

SCRIPT = ("import json; from headscope.models.tiny import tiny_tokenizer; "
          "print(json.dumps({s: sorted(tiny_tokenizer(s).get_vocab().items()) for s in "
          "('wordpiece', 'metaspace', 'bytelevel')}))")


def test_tiny_tokenizers_are_the_same_in_every_process():
    """Two interpreters (different hash seeds) build the same vocabularies, ids included."""
    runs = [subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")]
    first, second = (json.loads(r) for r in runs)
    assert first == second
    assert all(len(v) > 100 for v in first.values())


def test_wordpiece_vocab_covers_every_character_as_start_and_continuation():
    from headscope.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer("wordpiece")
    assert "[UNK]" not in tok.tokenize("the quick brown fox jumps over a lazy dog")
    assert tok.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
