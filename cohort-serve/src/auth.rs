//! Bearer tokens: read from a file (re-read when it changes), compared in constant time.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use cohort::{Error, Result};

/// A token file is checked for a new token at most this often.
const RECHECK: Duration = Duration::from_secs(1);

/// Larger token files are refused: a token is a line, not a document.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// The token `/v1` requests must present. Only its SHA-256 is kept: comparing digests
/// in constant time reveals neither the token's bytes nor its length.
pub struct Tokens {
    file: Option<PathBuf>,
    digest: RwLock<[u8; 32]>,
    /// When the file was last read, and what it held then; locked only by the request
    /// that re-reads it (others keep using the current token meanwhile).
    checked: Mutex<(Instant, String)>,
}

/// Never prints the token (nor its digest).
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// A fixed token (tests, embedders).
    pub fn fixed(token: &str) -> Tokens {
        Tokens {
            file: None,
            digest: RwLock::new(digest(token)),
            checked: Mutex::new((Instant::now(), token.to_string())),
        }
    }

    /// The token held in `path` (trimmed); an unreadable or empty file is an error.
    pub fn from_file(path: &Path) -> Result<Tokens> {
        let token = read_token(path)?;
        Ok(Tokens {
            file: Some(path.to_path_buf()),
            digest: RwLock::new(digest(&token)),
            checked: Mutex::new((Instant::now(), token)),
        })
    }

    /// Whether an `Authorization` header value carries the token. The scheme is
    /// case-insensitive (RFC 9110 §11.1): `Bearer`, `bearer` and `BEARER` all work.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        self.refresh();
        let Some(presented) = authorization.and_then(bearer_token) else {
            return false;
        };
        let expected = *self.digest.read().expect("token lock is never poisoned");
        bool::from(digest_bytes(presented).ct_eq(&expected))
    }

    /// Re-reads the token file if the last read is over a second old. A file that cannot
    /// be read, or is empty, leaves the current token in force (logged): a rotation
    /// script caught between truncating and writing must not lock every client out.
    fn refresh(&self) {
        let Some(path) = &self.file else { return };
        let Ok(mut checked) = self.checked.try_lock() else {
            return;
        };
        if checked.0.elapsed() < RECHECK {
            return;
        }
        checked.0 = Instant::now();
        match read_token(path) {
            Ok(token) if token == checked.1 => {}
            Ok(token) => {
                *self.digest.write().expect("token lock is never poisoned") = digest(&token);
                checked.1 = token;
                tracing::info!("token file changed: the new token is in force");
            }
            Err(e) => tracing::warn!(error = %e, "keeping the current token"),
        }
    }
}

/// The token of `Bearer <token>`, the scheme in any case.
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let header = header.trim_ascii();
    let space = header.iter().position(|b| b.is_ascii_whitespace())?;
    let (scheme, token) = header.split_at(space);
    let token = token.trim_ascii_start();
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

fn read_token(path: &Path) -> Result<String> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing {
            what: format!("token file '{}' does not exist", path.display()),
            help: "--token-file names a file holding the bearer token".into(),
        },
        _ => Error::io(path.display(), e),
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_TOKEN_FILE_BYTES {
        return Err(Error::Setting {
            setting: "--token-file".into(),
            value: path.display().to_string(),
            reason: format!(
                "it holds {size} bytes; a token file holds one line (at most \
                 {MAX_TOKEN_FILE_BYTES} bytes)"
            ),
        });
    }
    let token = std::fs::read_to_string(path)
        .map_err(io)?
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(Error::Setting {
            setting: "--token-file".into(),
            value: path.display().to_string(),
            reason: "the file is empty".into(),
        });
    }
    Ok(token)
}

fn digest(token: &str) -> [u8; 32] {
    digest_bytes(token.as_bytes())
}

fn digest_bytes(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_the_token_exact() {
        let tokens = Tokens::fixed("s3cret");
        let cases: &[(Option<&str>, bool)] = &[
            (Some("Bearer s3cret"), true),
            (Some("bearer s3cret"), true),
            (Some("BEARER s3cret"), true),
            (Some("Bearer   s3cret  "), true),
            (Some("Bearer s3cre"), false),
            (Some("Bearer s3cretx"), false),
            (Some("Bearer S3CRET"), false),
            (Some("Basic s3cret"), false),
            (Some("Bearers3cret"), false),
            (Some("s3cret"), false),
            (Some("Bearer"), false),
            (Some("Bearer "), false),
            (Some(""), false),
            (None, false),
        ];
        for (header, admitted) in cases {
            assert_eq!(
                tokens.admits(header.map(str::as_bytes)),
                *admitted,
                "{header:?}"
            );
        }
    }

    #[test]
    fn token_file_rotation_keeps_the_old_token_when_the_new_file_is_bad() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let tokens = Tokens::from_file(&path).unwrap();
        let admits = |t: &str| tokens.admits(Some(format!("Bearer {t}").as_bytes()));
        assert!(admits("first"));
        let age = |tokens: &Tokens| tokens.checked.lock().unwrap().0 -= RECHECK;

        std::fs::write(&path, "second\n").unwrap();
        assert!(admits("first"), "re-read at most once a second");
        age(&tokens);
        assert!(admits("second") && !admits("first"), "rotated");

        for broken in ["", "  \n"] {
            std::fs::write(&path, broken).unwrap();
            age(&tokens);
            assert!(
                admits("second"),
                "an empty file keeps the token: {broken:?}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        age(&tokens);
        assert!(admits("second"), "a missing file keeps the token");
        std::fs::write(&path, "third").unwrap();
        age(&tokens);
        assert!(admits("third"));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let shown = format!("{:?}", Tokens::fixed("s3cret"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn an_empty_token_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n").unwrap();
        let e = Tokens::from_file(&path).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
    }
}
