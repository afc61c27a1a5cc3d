//! Tests of the whole lock service in one deterministic process: servers
//! running the real `Node`, clients running the real `ClientSession`, a
//! fenced resource, and faults (crashes, partitions, client pauses, clock
//! drift). Checked after every step: mutual exclusion (at the resource and
//! against the clients' own lease beliefs), one client per token, no early
//! release; and liveness once faults stop.

mod checks;
mod scenarios;
mod schedules;
mod world;
