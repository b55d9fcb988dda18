//! The step definitions, grouped by domain as the workshop presents them. Shared by the `happy`
//! runner and by the coverage test, which checks that every step of every feature matches
//! exactly one definition here.

pub mod cluster;
pub mod deviations;
pub mod gate;
pub mod mesh;
pub mod parameters;
pub mod requests;
pub mod security;
pub mod telemetry;
pub mod traffic;
pub mod world;
