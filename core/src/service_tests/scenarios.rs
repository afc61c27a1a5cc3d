//! Named scenarios from SCENARIOS.md.
