"""EgoRAG -- the memory of "EgoLife: Towards Egocentric Life Assistant" (Yang et al., arXiv:2503.03803, §4.2;
official code ``EvolvingLMMs-Lab/EgoLife``, S-Lab licence).

**Claim.** A life assistant must answer questions whose evidence lies hours or days back in a week of video.
EgoRAG keeps a memory bank and retrieves hierarchically: summaries choose the time window, clips inside it are
ranked, and the answer model sees only the retrieved clips. It helps most for old evidence (Table 6: EgoGPT +
EgoRAG 27.2 / 35.7 / 38.9 / 35.4 % at < 2 h / 2-6 h / 6-24 h / > 24 h, against 28.2 / 29.1 / 26.8 / 25.0 % for
EgoGPT on a 30-min segment).

**Memory bank** (Eq. 1): ``M = {(c_i, d_i, t_i)}`` -- clip features c_i, the caption d_i of each 30 s clip, and
timestamped summaries t_i (hourly and daily, by an LLM). **Retrieval** (Eq. 2-3): pick the day, then the hour,
from the summaries; inside the window ``s_i = Sim(q, c_i) + λ·Sim(q, d_i)``, ``R = TopK(s_i)``; the answer model
gets (q, R). The paper's experiments and the released code rank by caption text only, top 3 (the paper calls
this λ = 0, which contradicts Eq. 2 as printed; see :mod:`.retrieval`). We follow the corrected fact sheet and
the released code: **summaries only choose the window; clips are ranked by caption similarity, top 3**;
Eq. 2 with a clip-level similarity (the embedding of a structured scene record) and a λ sweep is an option.

**Our public API**

- :mod:`.simulator` -- ``simulate(days, clips_per_hour, seed) -> LifeLog``, ``make_questions(log, per_kind)``:
  a seeded week-long (to a year) life log with EgoLifeQA-style questions (EntityLog, EventRecall,
  HabitInsight, RelationMap, TaskMaster) whose evidence times are known.
- :mod:`.memory` -- ``MemoryStore.open(folder, embedder, summarizer)``, ``.ingest(captions)`` (idempotent,
  transactional, resumable), ``.index`` (faiss flat index + summary levels), ``.check()``;
  ``read_captions(jsonl)``; ``Summarizer`` (extractive offline default, or any LLM spec).
- :mod:`.retrieval` -- ``retrieve(index, q_vec, before, method)`` with ``hierarchical`` (default), ``eq2``,
  ``llm`` (LLM-guided day/hour selection), ``flat`` (baseline).
- :mod:`.answering` -- ``answer_choices(lm, items)`` (exact multiple-choice scoring), ``answer_open``.
- ``paperlab egorag run [--quick]``, ``paperlab egorag ingest --store DIR --captions FILE.jsonl``,
  ``paperlab egorag ask --store DIR "question" [--model SPEC] [--retrieval hierarchical|flat|eq2|llm]``.
"""
