"""The bundled demo: unfair clauses in online Terms of Service (CLAUDETTE; CC BY 4.0).

Galassi, A., Lagioia, F., Jabłonowska, A., Lippi, M. (2024). Unfair clause detection in terms of service
across multiple languages. Artificial Intelligence and Law. doi:10.1007/s10506-024-09398-7.
Licence and provenance: ``lexcoder/data/tos_unfair_clauses/LICENSE`` and ``SOURCE.md``.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .config import Config, config_from_dict

TOS_LABELS = ["limitation_of_liability", "unilateral_termination", "unilateral_change", "contract_by_using",
              "content_removal", "jurisdiction", "choice_of_law", "arbitration", "privacy_included"]

CITATION = ("Galassi, A., Lagioia, F., Jabłonowska, A., Lippi, M. (2024). Unfair clause detection in terms "
            "of service across multiple languages. Artificial Intelligence and Law. "
            "doi:10.1007/s10506-024-09398-7 (data: CC BY 4.0)")

LLM_ALIASES = {"smollm2"}

# CPU-sensible fine-tuning for the demo: ToS sentences are short (median ~25 tokens); 5 short epochs (every
# sentence with a code + 2.5x as many fresh others: 8% of the sentences carry a code) at a higher learning
# rate, averaged with TF-IDF (the blend beats either model alone on this data).
# Measured on the demo split before 2026-11-30 (idle 2-core CPU): 6.8 min, test macro-F1 0.657 (TF-IDF alone
# 0.573); on the whole-document split since then (other test documents): 8.4 min, 0.684 (TF-IDF 0.679).
ENCODER_DEMO_PARAMS = {"max_length": 128, "epochs": 5, "negative_ratio": 2.5, "lr": 1.5e-4, "head_lr": 1e-3,
                       "batch_size": 16, "blend_tfidf": 0.5}


def demo_data_path() -> Path:
    """Path of the bundled ToS sentences (gzip CSV: 17,383 sentences from 50 Terms of Service)."""
    return Path(str(resources.files("lexcoder") / "data" / "tos_unfair_clauses" / "sentences.csv.gz"))


def demo_config(*, model: str = "tfidf", seed: int = 42) -> Config:
    """The demo's configuration: 9 category labels, one document per group, 60/20/20 split."""
    if model == "tfidf":
        model_section = {"kind": "tfidf"}
    else:  # decoder LLM aliases (e.g. smollm2) train with LoRA; any other name is an encoder
        kind = "llm" if model.strip().lower() in LLM_ALIASES else "encoder"
        params = ENCODER_DEMO_PARAMS if kind == "encoder" else {"max_length": 128, "epochs": 1}
        model_section = {"kind": kind, "name": model, "params": params}
    return config_from_dict({
        "data": {"path": str(demo_data_path()), "text_column": "text", "id_column": "id",
                 "label_columns": TOS_LABELS, "group_column": "doc_id"},
        # the 50 documents share numbering lines ("1.", "2.", "Contact us"): linking documents through them
        # would chain most of the corpus into one unit, so documents stay whole and such lines may repeat
        # across splits (counted in the manifest)
        "split": {"seed": seed, "duplicates": "keep_groups"},
        "model": model_section,
    }, source="the demo configuration")
