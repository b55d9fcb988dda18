//! kubeconfig (work in progress)
