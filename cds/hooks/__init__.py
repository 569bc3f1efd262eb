"""CDS Hooks 2.0 service: discovery, the patient-view / order-select / order-sign services, feedback.

A renderer like the CLI: it turns Findings into cards and never re-derives clinical logic. Modules:
`settings` (configuration), `app` (ASGI app and endpoints), `discovery` (service definitions), `requests`
(hook request validation), `prefetch` and `fhir_client` (prefetch semantics and the FHIR fallback),
`orders` (which draft orders a call is about), `cards` (Finding -> card), `feedback_store` (SQLAlchemy),
`security` (JWT bearer validation), `middleware` (request ids, size limit), `rule_docs` (rule metadata).
"""
