"""The 21 systems of the paper digest: name (= subpackage = CLI command), paper, arXiv id.

A system is *implemented* when ``paperlab/<name>/cli.py`` exists (checked on disk: importing this
module, listing the systems or building ``paperlab --help`` imports no system package). Its
``cli.py`` defines a typer ``app`` (with at least a ``run`` command), imported only when its
subcommand is invoked, and must stay cheap to import: heavy imports (torch, transformers, …) happen
inside the command functions. Its ``experiment.py`` defines

- ``reproduce(quick: bool, out: Path | None) -> Path`` (the run directory), which
  ``paperlab reproduce`` calls, and
- ``default_config(quick: bool)``: the configuration that ``reproduce(quick, out)`` runs, whose
  :func:`~paperlab.core.runs.config_hash` its ``results.json`` records (``paperlab reproduce
  --skip-done`` compares the two).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class System:
    name: str
    title: str
    arxiv: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"

    @property
    def implemented(self) -> bool:
        """``paperlab/<name>/cli.py`` exists (found on disk, nothing of the system is imported)."""
        spec = importlib.util.find_spec(f"paperlab.{self.name}")  # imports only the parent `paperlab`
        if spec is None or not spec.submodule_search_locations:
            return False
        return any((Path(loc) / "cli.py").is_file() for loc in spec.submodule_search_locations)

    def cli_app(self):
        """The system's typer app (imports ``paperlab.<name>.cli``)."""
        return importlib.import_module(f"paperlab.{self.name}.cli").app

    def cli_command(self):
        """The system's typer app as a click group named after the system (imports its ``cli.py``)."""
        import typer.main

        group = typer.main.get_group(self.cli_app())  # a group even when the app has one command
        group.name = self.name
        if not group.help:
            group.help = self.title
        return group

    def reproduce(self, quick: bool, out):
        return importlib.import_module(f"paperlab.{self.name}.experiment").reproduce(quick=quick, out=out)

    def default_config(self, quick: bool) -> Any:
        """The configuration ``reproduce(quick, out)`` runs (imports ``paperlab.<name>.experiment``)."""
        return importlib.import_module(f"paperlab.{self.name}.experiment").default_config(quick=quick)

    def is_done(self, run_dir: Path | str, quick: bool) -> bool:
        """``run_dir/results.json`` is a finished run of this system, made by this paperlab version
        with the configuration ``reproduce(quick, ...)`` would run now."""
        from paperlab.core.runs import config_hash, paperlab_version

        try:
            res = json.loads((Path(run_dir) / "results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if not isinstance(res, dict) or res.get("system", self.name) != self.name:
            return False
        if res.get("paperlab_version") != paperlab_version() or not res.get("config_hash"):
            return False
        cfg = self.default_config(quick)
        return res["config_hash"] == config_hash(cfg, self.name)


SYSTEMS: tuple[System, ...] = (
    System("telephone", "LLM as a Broken Telephone: Iterative Generation Distorts Information", "2502.20258"),
    System("uoe", "Union of Experts: Adapting Hierarchical Routing to Equivalently Decomposed Transformer", "2503.02495"),
    System("fusechat", "FuseChat-3.0: Preference Optimization Meets Heterogeneous Model Fusion", "2503.04222"),
    System("af2", "Audio Flamingo 2: Long-Audio Understanding and Expert Reasoning", "2503.03983"),
    System("start", "START: Self-taught Reasoner with Tools", "2503.04625"),
    System("l2m", "L²M: Mutual Information Scaling Law for Long-Context Language Modeling", "2503.04725"),
    System("requant", "Identifying Sensitive Weights via Post-quantization Integral (PQI / ReQuant)", "2503.01901"),
    System("translationese", "Lost in Literalism: How Supervised Training Shapes Translationese in LLMs", "2503.04369"),
    System("egorag", "EgoLife: Towards Egocentric Life Assistant (EgoRAG)", "2503.03803"),
    System("landiff", "The Best of Both Worlds: Integrating Language Models and Diffusion Models for Video Generation", "2503.04606"),
    System("tsv", "How to Steer LLM Latents for Hallucination Detection? (TSV)", "2503.01917"),
    System("storm", "Token-Efficient Long Video Understanding for Multimodal LLMs (STORM)", "2503.04130"),
    System("feedback_edit", "Dedicated Feedback and Edit Models Empower Inference-Time Scaling", "2503.04378"),
    System("lingoly", "LINGOLY-TOO: Disentangling Memorisation from Reasoning", "2503.02972"),
    System("priming", "On the Acquisition of Shared Grammatical Representations in Bilingual Language Models", "2503.03962"),
    System("fm_inverse", "Combining Flow Matching and Transformers for Efficient Solution of Bayesian Inverse Problems", "2503.01375"),
    System("derailment", "Understanding and Predicting Derailment in Toxic Conversations on GitHub", "2503.02191"),
    System("ifir", "IFIR: Instruction-Following in Expert-Domain Information Retrieval", "2503.04644"),
    System("pokechamp", "PokéChamp: an Expert-level Minimax Language Agent", "2503.04094"),
    System("hybridnorm", "HybridNorm: Towards Stable and Efficient Transformer Training via Hybrid Normalization", "2503.04598"),
    System("llmvox", "LLMVoX: Autoregressive Streaming Text-to-Speech Model for Any LLM", "2503.04724"),
)

BY_NAME = {s.name: s for s in SYSTEMS}
