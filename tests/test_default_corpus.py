import hashlib
import re
from pathlib import Path

from electra.api import default_corpus
from electra.data.corpus import iter_documents


def test_bundled_corpus_is_the_noticed_wikipedia_sample():
    files = [Path(p) for p in default_corpus()]
    assert [f.name for f in files] == [f"wiki_{i:02d}.gz" for i in range(10)]
    notice = (files[0].parent / "NOTICE").read_text()
    assert "CC BY-SA 3.0" in notice
    listed = dict((name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", notice, re.M))
    for f in files:
        assert hashlib.sha256(f.read_bytes()).hexdigest() == listed[f.name]


def test_bundled_corpus_parses_as_wikiextractor_documents():
    docs = list(iter_documents(default_corpus()[:1]))
    assert len(docs) > 300
    assert not any(line.startswith("<doc") or line == "</doc>" for doc in docs for line in doc)
    assert docs[0][0].startswith("Jarred Shaw (born September 28, 1990)")  # title-only docs skipped
