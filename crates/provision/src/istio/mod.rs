//! Istio tooling: versions and where releases are downloaded from, the cached istioctl and its
//! arguments, and the release's addons.

pub mod addons;
pub mod artifacts;
pub mod hub;
pub mod istioctl;
pub mod releases;
pub(crate) mod support_window;
pub mod version;

pub use artifacts::{CachedRelease, Platform};
pub use hub::IstioHub;
pub use istioctl::{Istioctl, KubeTarget};
pub use version::{Flavour, IstioVersion};
