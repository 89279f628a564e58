//! The exchange with the provincial platform, against the stand-in
//! (`seedling_tests::platform`): delivery through outages, restarts and
//! concurrent workers with every message applied exactly once and each
//! child's messages in order; signatures, Retry-After, parking and replay,
//! pause (also on the console's delivery page); the roster import and the
//! change feed.

mod bench;
mod console;
mod delivery;
mod inbound;
mod support;
