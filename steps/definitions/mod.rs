//! The step definitions, grouped by domain as the workshop presents them. Shared by the `happy`
//! runner and by the coverage test, which checks that every step of every feature matches
//! exactly one definition here.

// What the steps share, from the leaves up: a step's failure; the run's environment; how a
// request is sent; what is read before requests; how the run departs from the workshop; the
// scenario's World; which scenarios a cluster can run; the steps' typed parameters.
pub mod env;
pub mod failure;
pub mod gate;
pub mod parameters;
pub(crate) mod readings;
pub mod target;
pub mod verbatim;
pub mod world;

// The steps, by domain. A step module uses the shared modules above, never another step module.
pub mod cluster;
pub mod deviations;
pub mod mesh;
pub mod requests;
pub mod security;
pub mod telemetry;
pub mod traffic;
