"""Depression rating instruments: recognise a score Observation and classify a score."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cds.knowledge.models import Coding, Instrument, SourcedValue


class InstrumentIndex:
    def __init__(
        self,
        instruments: Iterable[Instrument],
        local_codes: Mapping[str, Iterable[Coding]],
        remission_overrides: Mapping[str, SourcedValue],
    ) -> None:
        self.instruments: dict[str, Instrument] = {i.id: i for i in instruments}
        self._by_code: dict[tuple[str, str], Instrument] = {}
        for inst in self.instruments.values():
            for c in (*inst.codes, *local_codes.get(inst.id, ())):
                self._by_code[(c.system, c.code)] = inst
        self._remission = {
            iid: remission_overrides.get(iid, inst.remission_max) for iid, inst in self.instruments.items()
        }

    def match(self, system: str | None, code: str | None) -> Instrument | None:
        if code is None:
            return None
        return self._by_code.get((system or "", code))

    def remission_max(self, instrument_id: str) -> SourcedValue | None:
        return self._remission.get(instrument_id)

    def severity(self, instrument_id: str, score: float) -> str | None:
        inst = self.instruments.get(instrument_id)
        if inst is None:
            return None
        for band in inst.severity_bands:
            if band.min <= score <= band.max:
                return band.label
        return None
