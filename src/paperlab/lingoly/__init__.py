"""LINGOLY-TOO — "Disentangling Reasoning from Knowledge with Templatised Orthographic Obfuscation"
(Khouja et al., arXiv:2503.02972; official code ``jkhouja/LingOly-TOO``, CC BY-SA 4.0).

**Claim.** Linguistics-olympiad problems (UKLO) test reasoning from a small "Rosetta stone" of examples,
but a model may have *memorised* the problems or know the language. Rewriting the target-language text
("Problemese") with a consistent, phonologically sensible permutation of its graphemes keeps every
problem solvable by the same reasoning while breaking memorised answers and prior knowledge. The gap
between the score on originals and on obfuscations,

    M_og = mean_{sub-questions} EM(original),   M_obf = mean_{sub-questions} mean_{obfuscations} EM,
    gap  = M_og - M_obf,

measures how much of a score is not reasoning: the best models drop from ~0.59 to ~0.48 exact match;
172 humans drop from 21.7 to 16.0 (0-100, -5.7 points, OLS with language fixed effects -5.8, p = 0.06).

**Obfuscation** (:mod:`~paperlab.lingoly.obfuscation`): a per-problem *template* of Table rows / Sets
(graphemes that may be permuted among themselves) and Fixed terms; every row of >= 2 graphemes is rotated
by a non-zero cyclic shift (``g_k -> g_{(k+s) mod n}``, ``s != 0``; table columns shifted likewise), the
identity rejected; ``random.seed(317)`` once, problems in sorted order, 6 mappings drawn without
replacement, the original kept as obfuscation 0. Text is NFD-normalised (glottal stops U+0294/U+0241 ->
U+0242), scanned greedily left to right, longest grapheme first, on the lower-cased text; the case of a
replaced grapheme is restored on its first character; unmapped characters are copied. Only the
Problemese is touched (``@@@`` spans, or the template's word list); answers are obfuscated with the same
mapping; ``$$$``/``&&&`` markers are stripped and metadata (language name, family) neutralised.

**Scoring** (:mod:`~paperlab.lingoly.scoring`): the paper's ``clean_answer`` and exact match, max over
the alternatives of a list-valued reference; BLEU and chrF secondaries.

**Template file format** (JSON, one object; all keys optional except that a template needs something
to permute)::

    {"problem": "88",
     "tables": [ [ [["p","t","k"], ["m","n"]],          # column 0: rows of graphemes
                   [["b","d","g"], ["w","y"]] ] ],       # column 1: same row shape
     "sets":   [["a","e","i","o","u"]],                  # one cyclic class each
     "fixed":  ["qilol", ":"],                           # map to themselves
     "problemese": ["Ele", "mala", "metutowa"],          # words to obfuscate when the problem has no @@@
     "metadata": ["Amele", "Trans-New-Guinea"],          # replaced by metadata_placeholder
     "metadata_placeholder": "Language X"}

The six packaged templates (``paperlab/data/lingoly/templates/``) are derived from the released
obfuscations by :mod:`~paperlab.lingoly.templates` (see there how).

**Public API**

- :class:`~paperlab.lingoly.obfuscation.Template`, :func:`~paperlab.lingoly.obfuscation.load_template`,
  :func:`~paperlab.lingoly.obfuscation.validate_template`, :func:`~paperlab.lingoly.obfuscation.sample_mappings`,
  :func:`~paperlab.lingoly.obfuscation.apply_mapping`, :func:`~paperlab.lingoly.obfuscation.remove_metadata`
- :func:`~paperlab.lingoly.problems.obfuscate_problem`, :func:`~paperlab.lingoly.problems.deobfuscate_problem`,
  :func:`~paperlab.lingoly.problems.generate_obfuscations`
- :func:`~paperlab.lingoly.scoring.score`, :func:`~paperlab.lingoly.scoring.clean_answer`
- :class:`~paperlab.lingoly.solvers.MemorisingSolver`, :class:`~paperlab.lingoly.solvers.RuleInducingSolver`
- :func:`~paperlab.lingoly.harness.build_prompts`, :func:`~paperlab.lingoly.harness.parse_answers` (any LLM
  via ``paperlab.core.models.load_lm``)
- ``paperlab lingoly run | obfuscate | validate | score`` (:mod:`~paperlab.lingoly.cli`)
"""
