"""`make run`'s demo: a tenant wired to the sandbox, and a few donations followed to confirmation."""
