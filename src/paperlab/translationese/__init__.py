"""Lost in Literalism: How Supervised Training Shapes Translationese in LLMs (Li et al., ACL 2025, arXiv 2503.04369).

**Claim.** LLM translations are often *translationese*: overly literal, unnatural target text. Annotators mark
unnatural spans; the Translationese Span Ratio of a translation ``y`` is the share of its characters inside
spans labelled "Unnatural Phrase Flow" or "Unnatural Sentence Flow", averaged over 3 annotators,

.. math:: \\mathrm{TSR}(y) = \\frac{1}{3}\\sum_{a=1}^{3} \\frac{\\sum_{s \\in S_a(y)} (\\mathrm{end}_s - \\mathrm{start}_s)}{|y|},

and ``y`` counts as translationese when ``TSR(y) > 0.2``. 36-76% of EN-ZH outputs (ALMA, Mistral, GPT-3.5,
GPT-4) are translationese; asking GPT-4 to polish its own output lowers that to 25%. The paper traces the bias
to supervised fine-tuning: 41% (EN-ZH) / 36% (DE-EN) of the SFT references are themselves translationese. Since
translationese reads as unnatural, it has high perplexity under a base LM,

.. math:: \\mathrm{PPL}(y) = \\exp\\Big(-\\tfrac{1}{T-1}\\sum_{t=2}^{T} \\log p_\\theta(y_t \\mid y_{<t})\\Big),

and two remedies follow: *polish* the references with an LLM (given source + reference, rewrite naturally), or
*filter* the SFT pairs whose reference PPL is highest (drop the top X per language direction). Fine-tuning on
polished references lowered the output PPL of Llama-3.1-8B from 13.77 to 11.92 (EN-ZH documents; filter 0.8:
12.74), with more length variety and lexical density.

**What we reproduce.** The per-system TSR table from the released Label Studio annotations (exactly), PPL of the
annotated texts under a small base LM and its rank correlation with TSR, the filter's effect on the annotated
references (with ours and the paper's stored PPL), the heuristics, and a small LoRA SFT experiment (raw vs.
PPL-filtered vs. polished references, de->en).

Public API
----------
- :mod:`~paperlab.translationese.tsr` -- ``read_export(path)`` (Label Studio JSON/.json.gz -> tasks, one-line
  errors), ``annotator_tsr``, ``aggregate(projects)`` -> items, ``system_table(items)``, ``released_items(pair,
  which)``, ``PAPER_SHARES``.
- :mod:`~paperlab.translationese.ppl` -- ``perplexities(model, tok, texts)``, ``summarize``, ``ppl_filter(ppl,
  drop, groups)``.
- :mod:`~paperlab.translationese.heuristics` -- ``length_variety``, ``lexical_density``, ``word_tokenize``.
- :mod:`~paperlab.translationese.polish` -- ``polish(lm, sources, references)`` with ``POLISH_PROMPT``.
- :mod:`~paperlab.translationese.sft` -- ``train_lora``, ``translate``.
- :mod:`~paperlab.translationese.experiment` -- ``TranslationeseConfig``, ``default_config``, ``reproduce``.
- CLI: ``paperlab translationese run [--quick]``, ``tsr --annotations FILE [...]``, ``ppl --model SPEC --input
  FILE.jsonl``.
"""
