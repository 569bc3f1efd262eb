"""Construct pydantic models from values this package's typed code made, without validating them again.

Facts, findings and their parts are pydantic models, made a few hundred times per patient from values that
mypy-checked code computed (compiled, where mypyc also checks the declared types at run time). Validating each
again cost 11 % of an evaluation (about 3 µs per model, 0.56 ms per patient of the bulk benchmark). `trusted(Model)`
returns a constructor that keeps what is cheap and catches structural mistakes: a field name that the model does
not have, or a required field left out, is refused with pydantic's own error (the values are then validated);
defaults are filled in as pydantic fills them.

What it does not do is convert values (an int given for a float field stays an int, a list given for a tuple stays
a list). The test suite runs every construction both ways (`CDS_CHECK_CONSTRUCTION=1`, set in tests/conftest.py)
and fails on any difference in a value or its type, so a caller that relies on a conversion is caught there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from cds.errors import CdsError

M = TypeVar("M", bound=BaseModel)

# Set before the package is imported: every construction is also validated, and the two must agree (read when
# a constructor is made).
CHECK = os.environ.get("CDS_CHECK_CONSTRUCTION", "") == "1"


_REQUIRED = object()  # the template's marker of a field without a default (required, or made by a default_factory)


class ConstructionMismatch(CdsError):
    """A trusted construction differs from what validation makes of the same values: a bug in the caller."""


def _setter(model: type[BaseModel], name: str) -> Callable[[Any, Any], None]:
    """The slot's own descriptor setter (what object.__setattr__ ends at, the models being frozen), found once."""
    for klass in model.__mro__:
        if name in klass.__dict__:
            return cast(Callable[[Any, Any], None], klass.__dict__[name].__set__)
    raise TypeError(f"{model.__name__} has no {name}")


class Trusted(Generic[M]):
    """`Model(**values)` for values typed code made: see the module docstring. ``values`` must be a dict made for
    the call (a literal): one that holds every field in the model's order becomes the model's own, uncopied."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.validate: Callable[[Any], M] = model.__pydantic_validator__.validate_python
        fields = model.model_fields
        # Every field in the model's order (pydantic keeps __dict__ in it, and serialises in that order) with its
        # default, or _REQUIRED: updating a copy with the values keeps that order.
        self.template: dict[str, Any] = {}
        self.factories: list[tuple[str, Callable[[], Any]]] = []
        for name, f in fields.items():
            if f.default_factory is not None:
                self.template[name] = _REQUIRED
                self.factories.append((name, f.default_factory))  # type: ignore[arg-type]
            else:
                self.template[name] = _REQUIRED if f.default is PydanticUndefined else f.default
        self.size = len(fields)
        self.names = list(fields)
        self.required = [name for name, f in fields.items() if f.is_required()]
        self.missing = _REQUIRED
        self.new: Callable[[type[M]], M] = model.__new__
        self.set_dict = _setter(model, "__dict__")
        self.set_fields_set = _setter(model, "__pydantic_fields_set__")
        self.set_extra = _setter(model, "__pydantic_extra__")
        self.set_private = _setter(model, "__pydantic_private__")
        self.check = CHECK
        # What pydantic would convert or reject on its own: extra fields kept, validators, aliases.
        decorators = model.__pydantic_decorators__
        self.plain = (
            model.model_config.get("extra") != "allow"
            and not decorators.field_validators
            and not decorators.model_validators
            and all(f.alias is None and f.validation_alias is None for f in fields.values())
        )

    def __call__(self, values: dict[str, Any]) -> M:
        if not self.plain:
            return self.validate(values)
        if len(values) == self.size and self._in_order(values):
            data = values  # every field, in the model's order: the (fresh) dict becomes the model's
        else:
            data = self.template.copy()
            data.update(values)
            # A name the model does not have makes the dict longer; a required field left out keeps its marker.
            if len(data) != self.size:
                return self.validate(values)  # raises pydantic's own error
            missing = self.missing
            for name in self.required:
                if data[name] is missing:
                    return self.validate(values)
            for name, factory in self.factories:
                if name not in values:
                    data[name] = factory()
        obj = self.new(self.model)
        self.set_dict(obj, data)
        self.set_fields_set(obj, set(values))
        self.set_extra(obj, None)
        self.set_private(obj, None)
        if self.check:
            _check(obj, self.validate(values))
        return obj

    def replace(self, obj: M, update: dict[str, Any]) -> M:
        """``obj.model_copy(update=update)`` for a model of this constructor, cheaper. pydantic does not validate
        ``update`` there either; the check mode (CDS_CHECK_CONSTRUCTION) validates the result here."""
        values = obj.__dict__.copy()  # every field in the model's order: the update keeps it
        values.update(update)
        return self(values)

    def _in_order(self, values: dict[str, Any]) -> bool:
        names = self.names
        return all(key == names[i] for i, key in enumerate(values))


def _check(made: BaseModel, validated: BaseModel) -> None:
    """repr tells apart what == does not: 1 and 1.0, a list and a tuple."""
    if repr(made.__dict__) != repr(validated.__dict__):
        raise ConstructionMismatch(
            f"{type(made).__name__}: constructed {made.__dict__!r}, validation gives {validated.__dict__!r}"
        )


def trusted(model: type[M]) -> Trusted[M]:
    return Trusted(model)
