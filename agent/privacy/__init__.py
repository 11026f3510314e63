"""Privacy by construction: redaction of personal data before it is stored or logged."""
