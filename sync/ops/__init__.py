"""Operations: reconciliation, parity, historical import and sign-off, offboarding, alerts."""
