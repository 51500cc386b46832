"""The analyses' implementations: `analyses/<name>.py` is the command (its options, documentation and `main`),
`analyses/impl/<name>.py` what it runs, imported after its arguments are parsed."""
