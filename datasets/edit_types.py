"""Edit type of a free-text instruction by keyword rules (MagicBrush has no edit-type labels).

The categories are the paper's Table 1 (``schema.EDIT_TYPES``). Rules are checked in order; the first match
wins; no match gives ``unknown``. They are heuristics for reporting per-type breakdowns, not ground truth:
``infer_edit_type`` is deterministic and its rule name is recorded with each built sample.
"""

from __future__ import annotations

import re

from .schema import EDIT_TYPES

COLOR_WORDS = ("red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black", "white",
               "gray", "grey", "golden", "gold", "silver", "beige", "teal", "turquoise", "cyan", "magenta",
               "maroon", "navy", "color", "colour", "colored", "coloured")

# (edit type, rule name, regex over the lower-cased instruction); first match wins.
_RULES: tuple[tuple[str, str, str], ...] = (
    ("remove_object", "remove", r"\b(remove|delete|erase|get rid of|take (away|out|off)|eliminate|without)\b"),
    ("change_color", "color_to",
     r"\b(make|turn|change|paint|color|colour|dye|recolou?r)\b.*(?<!\ba )(?<!\ban )\b("
     + "|".join(COLOR_WORDS) + r")\b"),  # "to an orange" is a fruit, "to orange" a colour
    ("replace_object", "replace",
     r"\b(replace|swap|substitute|exchange)\b|\b(change|turn|transform|convert)\b.*\b(into|to|with)\b"
     r"|\binstead of\b|\bbe (a|an)\b|\bwhat if\b.*\bwere\b"),
    ("change_action", "action",
     r"\b(running|jumping|sitting|standing|walking|flying|dancing|swimming|smiling|sleeping|eating|waving)\b"),
    ("add_object", "add",
     r"\b(add|put|place|insert|include|draw|attach|hang|give|let there be|have|wear(s|ing)?|hold(s|ing)?|carry(ing)?)\b"
     r"|\bthere (should )?be\b"),
    ("change_appearance", "appearance",
     r"\b(make|turn|change)\b|\b(style|texture|look|season|weather|snow(y|ing)?|rain(y|ing)?|night|sunset"
     r"|painting|sketch|cartoon|older|younger|bigger|smaller|larger)\b"),
)


def infer_edit_type_with_rule(instruction: str) -> tuple[str, str]:
    """``(edit_type, rule_name)`` for an instruction; ``('unknown', 'none')`` when no rule matches."""
    text = " ".join(str(instruction or "").lower().split())
    for edit_type, name, pattern in _RULES:
        if re.search(pattern, text):
            return edit_type, name
    return "unknown", "none"


def infer_edit_type(instruction: str) -> str:
    """Edit type of ``instruction`` by keyword rules: add/put/place -> add_object, remove/delete/get rid ->
    remove_object, replace/change X to Y/turn into -> replace_object, colour words -> change_color, ..."""
    return infer_edit_type_with_rule(instruction)[0]


def normalize_edit_type(value, instruction: str = "", field: str = "edit_type") -> tuple[str, str]:
    """A user-given edit type (aliases like 'add', 'add object', 'Color' accepted) or, when empty, the inferred
    one. Returns ``(edit_type, source)`` with source 'given' or 'rule:<name>'; raises ValueError naming ``field``."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        t, rule = infer_edit_type_with_rule(instruction)
        return t, f"rule:{rule}"
    v = re.sub(r"[\s\-]+", "_", str(value).strip().lower())
    aliases = {"add": "add_object", "remove": "remove_object", "replace": "replace_object",
               "color": "change_color", "colour": "change_color", "change_colour": "change_color",
               "appearance": "change_appearance", "action": "change_action", "recon": "reconstruction"}
    v = aliases.get(v, v)
    if v not in EDIT_TYPES:
        raise ValueError(f"{field}: {value!r} is not one of {EDIT_TYPES}")
    return v, "given"
