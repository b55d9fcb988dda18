//! Image references as the kubelet and containerd read them: Docker's defaults applied, so
//! that two spellings of one image compare equal and an image's registry can be named. The
//! deviations compare the legacy client's image with the workshop's; the pull counter names
//! the registry each pull went to.

/// Whether two image references name the same image once Docker's defaults are applied
/// (`radial/busyboxplus:curl` = `docker.io/radial/busyboxplus:curl`; `nginx` =
/// `docker.io/library/nginx:latest`) — the normalisation of distribution/reference's
/// `ParseNormalizedNamed`, which kubelet and containerd apply.
pub fn same_image(a: &str, b: &str) -> bool {
    normalize_image(a) == normalize_image(b)
}

/// The full reference Docker's defaults make of `image` (`nginx` →
/// `docker.io/library/nginx:latest`).
pub fn normalize_image(image: &str) -> String {
    let image = image.trim();
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (repo, tag) = match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (name, None),
    };
    let first = repo.split('/').next().unwrap_or_default();
    let has_registry =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_registry {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    if let Some(rest) = full.strip_prefix("index.docker.io/") {
        full = format!("docker.io/{rest}");
    }
    match (tag, digest) {
        (Some(t), Some(d)) => format!("{full}:{t}@{d}"),
        (Some(t), None) => format!("{full}:{t}"),
        (None, Some(d)) => format!("{full}@{d}"),
        (None, None) => format!("{full}:latest"),
    }
}
