//! Unpacking release archives (`.tar.gz`) without letting an entry escape the target
//! directory: absolute paths, `..` and links pointing outside are refused, not skipped.

use std::fs::File;
use std::path::{Component, Path};

use crate::{Error, Result};

/// Unpacks `archive` into `dest` (created if missing). Every entry must stay inside `dest`;
/// the first one that would not is an error naming the archive and the entry.
pub fn extract_tar_gz(archive: &Path, dest: &Path) -> Result<()> {
    let fail = |reason: String| Error::Archive {
        path: archive.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dest).map_err(|source| Error::LocalIo {
        action: "create directory".into(),
        path: dest.to_path_buf(),
        source,
    })?;
    let file = File::open(archive).map_err(|source| Error::LocalIo {
        action: "open".into(),
        path: archive.to_path_buf(),
        source,
    })?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    tar.set_preserve_permissions(true);
    let entries = tar
        .entries()
        .map_err(|e| fail(format!("not a tar.gz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("corrupt entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| fail(format!("entry with an unreadable path: {e}")))?
            .into_owned();
        if !stays_inside(&path) {
            return Err(fail(format!(
                "entry {} would be written outside {}",
                path.display(),
                dest.display()
            )));
        }
        if let Some(target) = entry
            .link_name()
            .map_err(|e| fail(format!("entry {}: unreadable link: {e}", path.display())))?
        {
            let kind = entry.header().entry_type();
            // A symlink is resolved from its own directory, a hard link from the archive root.
            let resolved = if kind.is_symlink() {
                path.parent().unwrap_or(Path::new("")).join(&target)
            } else {
                target.to_path_buf()
            };
            if !stays_inside(&resolved) {
                return Err(fail(format!(
                    "link {} -> {} points outside {}",
                    path.display(),
                    target.display(),
                    dest.display()
                )));
            }
        }
        let unpacked = entry
            .unpack_in(dest)
            .map_err(|e| fail(format!("cannot unpack {}: {e}", path.display())))?;
        if !unpacked {
            return Err(fail(format!(
                "entry {} would be written outside {}",
                path.display(),
                dest.display()
            )));
        }
    }
    Ok(())
}

/// True when a relative path never climbs above its starting directory.
fn stays_inside(path: &Path) -> bool {
    let mut depth: i64 = 0;
    for component in path.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};

    fn archive_with(
        dir: &Path,
        build: impl FnOnce(&mut tar::Builder<GzEncoder<File>>),
    ) -> std::path::PathBuf {
        let path = dir.join("test.tar.gz");
        let file = File::create(&path).unwrap();
        let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::fast()));
        build(&mut builder);
        builder.into_inner().unwrap().finish().unwrap();
        path
    }

    fn add_file(b: &mut tar::Builder<GzEncoder<File>>, name: &str, body: &[u8], mode: u32) {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        // set_path refuses `..`; write the raw name so hostile archives can be built.
        let name_bytes = name.as_bytes();
        header.as_old_mut().name[..name_bytes.len()].copy_from_slice(name_bytes);
        header.set_cksum();
        b.append(&header, body).unwrap();
    }

    #[test]
    fn unpacks_files_with_their_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = archive_with(tmp.path(), |b| {
            add_file(b, "istio-1.28.1/bin/istioctl", b"#!/bin/sh\n", 0o755);
            add_file(
                b,
                "istio-1.28.1/samples/addons/kiali.yaml",
                b"kind: x\n",
                0o644,
            );
        });
        let dest = tmp.path().join("out");
        extract_tar_gz(&archive, &dest).unwrap();
        let bin = dest.join("istio-1.28.1/bin/istioctl");
        assert_eq!(std::fs::read(&bin).unwrap(), b"#!/bin/sh\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
                0o755
            );
        }
        assert!(
            dest.join("istio-1.28.1/samples/addons/kiali.yaml")
                .is_file()
        );
    }

    #[test]
    fn refuses_parent_dir_escape() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = archive_with(tmp.path(), |b| add_file(b, "a/../../evil", b"x", 0o644));
        let dest = tmp.path().join("out");
        let err = extract_tar_gz(&archive, &dest).unwrap_err().to_string();
        assert!(err.contains("outside"), "{err}");
        assert!(err.contains("test.tar.gz"), "{err}");
        assert!(!tmp.path().join("evil").exists());
    }

    #[test]
    fn refuses_absolute_paths_and_escaping_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = archive_with(tmp.path(), |b| add_file(b, "/tmp/evil-abs", b"x", 0o644));
        assert!(extract_tar_gz(&archive, &tmp.path().join("o1")).is_err());

        let archive = archive_with(tmp.path(), |b| {
            let mut header = tar::Header::new_gnu();
            header.set_size(0);
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_path("istio/link").unwrap();
            header.set_link_name("../../etc").unwrap();
            header.set_cksum();
            b.append(&header, std::io::empty()).unwrap();
        });
        let err = extract_tar_gz(&archive, &tmp.path().join("o2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("points outside"), "{err}");
    }

    #[test]
    fn names_the_archive_when_it_is_not_gzip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bad.tar.gz");
        std::fs::write(&path, b"<html>404</html>").unwrap();
        let err = extract_tar_gz(&path, &tmp.path().join("o"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.tar.gz"), "{err}");
    }

    #[test]
    fn stays_inside_logic() {
        assert!(stays_inside(Path::new("a/b/../c")));
        assert!(stays_inside(Path::new("./a")));
        assert!(!stays_inside(Path::new("a/../../b")));
        assert!(!stays_inside(Path::new("/abs")));
    }
}
