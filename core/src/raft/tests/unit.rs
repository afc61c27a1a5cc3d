//! Small unit tests of the Raft core.
