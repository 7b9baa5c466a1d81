"""Development tools, never installed: generators of the reference docs (`docs/configuration.md`,
`docs/metrics.md`) from the code, checked by tests/foundation/test_docs_current.py."""
