//! fake_service (work in progress)
