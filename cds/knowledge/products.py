"""RxNorm product table (SCD/SBD/packs) -> ingredients with per-unit strength.

Real records carry product codes, not ingredient codes; this table (copied from the project's shared data,
provenance in rules/catalog/PROVENANCE.md) maps each product to what one unit of it contains.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from cds.knowledge.models import Formulation

_STRENGTH = re.compile(r"^\s*([\d.]+)\s*(MG|MCG)(?:/(ML|HR|24HR|\d+\s*HR))?\s*$", re.IGNORECASE)


class ProductComponent(BaseModel):
    model_config = ConfigDict(frozen=True)
    ingredient: str
    mg_per_unit: float | None = None  # per tablet/capsule, or per mL when per_ml
    per_ml: bool = False
    mg_per_day_rate: float | None = None  # transdermal systems: the labelled delivery rate per 24 h
    salt: str | None = None


class Product(BaseModel):
    model_config = ConfigDict(frozen=True)
    rxcui: str
    display: str
    dose_form: str
    formulation: Formulation
    components: tuple[ProductComponent, ...]


def formulation_of(text: str) -> Formulation:
    """Formulation from an RxNorm dose form or a free-text drug name."""
    lowered = text.lower()
    if "transdermal" in lowered or "patch" in lowered:
        return "transdermal"
    if "extended release" in lowered or re.search(r"\b(xr|xl|er|sr|cr|24 hr|12 hr)\b", lowered):
        return "extended_release"
    return "immediate_release"


def _component(ingredient: str, strength: str, salt: str | None) -> ProductComponent:
    m = _STRENGTH.match(strength)
    if not m:
        return ProductComponent(ingredient=ingredient, salt=salt)
    amount = float(m.group(1)) / (1000.0 if m.group(2).upper() == "MCG" else 1.0)
    per = (m.group(3) or "").upper().replace(" ", "")
    if per == "ML":
        return ProductComponent(ingredient=ingredient, mg_per_unit=amount, per_ml=True, salt=salt)
    if per.endswith("HR"):
        hours = float(per[:-2] or 1)
        return ProductComponent(ingredient=ingredient, mg_per_day_rate=amount * 24.0 / hours, salt=salt)
    return ProductComponent(ingredient=ingredient, mg_per_unit=amount, salt=salt)


def _salt(precise: str, ingredient: str) -> str | None:
    for word in precise.split():
        if word in {"hydrobromide"} and ingredient in precise:
            return word
    return None


def load_products(path: Path) -> dict[str, Product]:
    products: dict[str, Product] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            strengths = dict(part.split("=", 1) for part in row["component_strengths"].split(";") if "=" in part)
            components = tuple(
                _component(ing, strengths.get(ing, ""), _salt(row["precise_ingredients"], ing))
                for ing in (i.strip() for i in row["ingredients"].split(";"))
                if ing
            )
            products[row["rxcui"]] = Product(
                rxcui=row["rxcui"],
                display=row["display"],
                dose_form=row["dose_form"],
                formulation=formulation_of(row["dose_form"] + " " + row["qualifier"]),
                components=components,
            )
    return products
