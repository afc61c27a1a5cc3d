//! Scenario tests named after Raft thesis sections.
