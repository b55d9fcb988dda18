//! Checksum files as release pages publish them: a bare `HEX`, or sha256sum's `HEX  filename`
//! (also `HEX *filename`, binary mode), possibly one line per file.

use crate::{Error, Result};

/// Lower-cased digest when `text` is exactly 64 hex digits.
pub fn normalize_digest(text: &str) -> Option<String> {
    let text = text.trim();
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

/// The sha256 digest a checksum file gives for `file_name` (or its only digest when it lists
/// one file or names none). `url` names the checksum file in errors.
pub fn parse_checksum(text: &str, url: &str, file_name: Option<&str>) -> Result<String> {
    let fail = |reason: String| Error::ChecksumFile {
        url: url.to_string(),
        reason,
    };
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(2, char::is_whitespace);
        let hex = parts.next().unwrap_or_default();
        let digest = normalize_digest(hex).ok_or_else(|| {
            fail(format!(
                "line {}: {hex:?} is not a sha256 digest (64 hex digits)",
                number + 1
            ))
        })?;
        let name = parts
            .next()
            .map(|rest| rest.trim().trim_start_matches('*').trim())
            .filter(|n| !n.is_empty());
        entries.push((digest, name.map(str::to_string)));
    }
    match entries.as_slice() {
        [] => Err(fail("it is empty".into())),
        [(digest, _)] => {
            // A lone entry for another file means we fetched the wrong checksum file.
            if let (Some(wanted), (_, Some(named))) = (file_name, &entries[0])
                && base_name(named) != wanted
            {
                return Err(fail(format!("it is for {named:?}, not for {wanted:?}")));
            }
            Ok(digest.clone())
        }
        many => {
            let wanted = file_name.ok_or_else(|| {
                fail(format!(
                    "it lists {} files and no file name was given",
                    many.len()
                ))
            })?;
            many.iter()
                .find(|(_, name)| name.as_deref().map(base_name) == Some(wanted))
                .map(|(digest, _)| digest.clone())
                .ok_or_else(|| fail(format!("it has no entry for {wanted:?}")))
        }
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const B: &str = "517ab7fc89ddeed5fa65abf71530d90648d9638ef0c4cde22c2c11f8097b8889";

    #[test]
    fn bare_digest() {
        assert_eq!(
            parse_checksum(&format!("{A}\n"), "u", Some("f")).unwrap(),
            A
        );
    }

    #[test]
    fn sha256sum_format_text_and_binary_mode() {
        let text = format!("{}  istio-1.28.1-linux-amd64.tar.gz\n", A.to_uppercase());
        assert_eq!(
            parse_checksum(&text, "u", Some("istio-1.28.1-linux-amd64.tar.gz")).unwrap(),
            A
        );
        let text = format!("{A} *kind-linux-amd64");
        assert_eq!(
            parse_checksum(&text, "u", Some("kind-linux-amd64")).unwrap(),
            A
        );
    }

    #[test]
    fn picks_the_named_file_from_a_list() {
        let text = format!("{A}  a.tar.gz\n{B}  ./dir/b.tar.gz\n");
        assert_eq!(parse_checksum(&text, "u", Some("b.tar.gz")).unwrap(), B);
        let err = parse_checksum(&text, "https://x/sums", Some("c.tar.gz")).unwrap_err();
        assert!(err.to_string().contains("https://x/sums"), "{err}");
        assert!(err.to_string().contains("c.tar.gz"), "{err}");
    }

    #[test]
    fn rejects_garbage_empty_and_wrong_file() {
        let err = parse_checksum("<html>Not Found</html>", "https://x/s", None).unwrap_err();
        assert!(err.to_string().contains("https://x/s"), "{err}");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(parse_checksum("\n\n", "u", None).is_err());
        assert!(parse_checksum(&format!("{A}  other.tar.gz"), "u", Some("mine.tar.gz")).is_err());
        assert!(parse_checksum(&A[..63], "u", None).is_err());
    }
}
