"""TRD clinical decision support: FHIR R4 record -> typed facts -> declarative rules -> explained findings."""

__version__ = "0.1.0"
