"""Rule authoring tools: test-patient cases, coverage, lint, diff and the rule catalog."""
