"""Drug catalog: recognise a medication by RxNorm ingredient or product code, ATC code, or name."""

from __future__ import annotations

import re
from collections.abc import Iterable

from cds.knowledge.models import Drug
from cds.knowledge.products import Product

RXNORM_SYSTEMS = frozenset(
    {
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "urn:oid:2.16.840.1.113883.6.88",
        "rxnorm",
    }
)
ATC_SYSTEMS = frozenset({"http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73", "atc"})


class DrugCatalog:
    def __init__(self, drugs: Iterable[Drug], products: dict[str, Product]) -> None:
        self.drugs: dict[str, Drug] = {}
        self._by_rxnorm: dict[str, Drug] = {}
        self._by_atc: dict[str, Drug] = {}
        names: dict[str, Drug] = {}
        for drug in drugs:
            self.drugs[drug.ingredient] = drug
            for code in drug.rxnorm:
                self._by_rxnorm[code] = drug
            for code in drug.atc:
                self._by_atc[code.upper()] = drug
            for name in (drug.ingredient, *drug.names):
                names[name.lower()] = drug
        self._names = names
        self._text_cache: dict[str, tuple[Drug, ...]] = {}
        # Longest names first so "desvenlafaxine" wins over "venlafaxine" and "dextromethorphan-bupropion"
        # over "bupropion"; word boundaries stop "venlafaxine" matching inside "desvenlafaxine".
        alternatives = sorted(names, key=len, reverse=True)
        self._name_pattern = re.compile(
            r"(?<![a-z])(" + "|".join(re.escape(n) for n in alternatives) + r")(?![a-z])", re.IGNORECASE
        )
        self.products = {
            rxcui: product
            for rxcui, product in products.items()
            if any(c.ingredient in self.drugs for c in product.components)
        }

    def by_rxnorm(self, code: str) -> Drug | None:
        return self._by_rxnorm.get(code.strip())

    def product(self, code: str) -> Product | None:
        return self.products.get(code.strip())

    def by_atc(self, code: str) -> Drug | None:
        return self._by_atc.get(code.strip().upper())

    def by_text(self, text: str) -> list[Drug]:
        """Every catalog drug named in a free text, in order of first appearance."""
        cached = self._text_cache.get(text)
        if cached is None:
            found: list[Drug] = []
            for match in self._name_pattern.finditer(text):
                drug = self._names[match.group(1).lower()]
                if drug not in found:
                    found.append(drug)
            cached = tuple(found)
            if len(self._text_cache) < 50_000:  # records repeat the same few names; bound the memory anyway
                self._text_cache[text] = cached
        return list(cached)

    def get(self, ingredient: str) -> Drug | None:
        return self.drugs.get(ingredient)
