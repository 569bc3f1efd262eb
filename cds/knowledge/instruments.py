"""Depression rating instruments: recognise a score Observation and classify a score."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cds.knowledge.models import Coding, Instrument, OtherObservation, SourcedValue


class InstrumentIndex:
    def __init__(
        self,
        instruments: Iterable[Instrument],
        local_codes: Mapping[str, Iterable[Coding]],
        remission_overrides: Mapping[str, SourcedValue],
        others: Iterable[OtherObservation] = (),
    ) -> None:
        self.instruments: dict[str, Instrument] = {i.id: i for i in instruments}
        self._by_code: dict[tuple[str, str], Instrument] = {}
        for inst in self.instruments.values():
            for c in (*inst.codes, *local_codes.get(inst.id, ())):
                self._by_code[(c.system, c.code)] = inst
        # Other scored questionnaires (GAD-7, PHQ-2, PHQ-9 item 9): scores, but not depression instruments.
        self.others: dict[str, OtherObservation] = {o.id: o for o in others}
        self._other_by_code = {(c.system, c.code): o for o in self.others.values() for c in o.codes}
        self._remission = {
            iid: remission_overrides.get(iid, inst.remission_max) for iid, inst in self.instruments.items()
        }

    def match(self, system: str | None, code: str | None) -> Instrument | None:
        if code is None:
            return None
        return self._by_code.get((system or "", code))

    def match_other(self, system: str | None, code: str | None) -> OtherObservation | None:
        if code is None:
            return None
        return self._other_by_code.get((system or "", code))

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
