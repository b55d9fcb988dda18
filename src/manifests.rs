//! manifests (work in progress)
