//! Reading definition files: the folder, TOML and JSON, group ids, line numbers.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::keys::{unknown_keys, Source};
use super::raw::RawGroup;
use super::spans::Node;
use super::typing::type_clauses;
use super::*;

/// Whether `id` matches `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn is_valid_group_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// The definition files of a folder: `*.toml` and `*.json`, sorted by name.
pub fn definition_files(dir: &Path) -> crate::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => crate::Error::Missing {
            what: format!("no definitions folder '{}'", dir.display()),
            help: "run cohort in a project folder (one with queries/ and cohort.toml), or \
                   pass --queries <dir>"
                .into(),
        },
        _ => crate::Error::io(dir.display(), e),
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| crate::Error::io(dir.display(), e))?
            .path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if path.is_file() && (ext == "toml" || ext == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every definition in `dir`. Returns the groups that parsed and every problem found.
pub fn load_dir(dir: &Path) -> crate::Result<(Vec<Group>, Vec<Problem>)> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for file in definition_files(dir)? {
        let bytes = std::fs::read(&file).map_err(|e| crate::Error::io(file.display(), e))?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let at = Location {
                    file: file.display().to_string(),
                    group: file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    line: Some(valid.iter().filter(|b| **b == b'\n').count() + 1),
                    ..Default::default()
                };
                problems.push(Problem::error(
                    &at,
                    format!(
                        "the file is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                        valid.len()
                    ),
                ));
                continue;
            }
        };
        match parse_group(&file, &text) {
            Ok((group, mut found)) => {
                problems.append(&mut found);
                if let Some(previous) = groups.iter().find(|g: &&Group| g.id == group.id) {
                    let at = Location {
                        file: group.file.clone(),
                        group: group.id.clone(),
                        ..Default::default()
                    };
                    problems.push(Problem::error(
                        &at,
                        format!(
                            "group id '{}' is also defined by '{}'",
                            group.id, previous.file
                        ),
                    ));
                    continue;
                }
                groups.push(group);
            }
            Err(problem) => problems.push(*problem),
        }
    }
    Ok((groups, problems))
}

/// Parses one definition file. A file that cannot be parsed at all is one problem.
pub fn parse_group(file: &Path, text: &str) -> Result<(Group, Vec<Problem>), Box<Problem>> {
    let id = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    let is_json = file.extension().and_then(|e| e.to_str()) == Some("json");
    parse_text(&file.display().to_string(), id, is_json, text, true)
}

/// Parses a definition that is not a file: JSON `text` (the structure of a group file)
/// under the given `id`, which is also the "file" its problems name. The id is not held
/// to the rules of file stems, so a caller can pick one no group file can have (the
/// service sizes requests as `(request)`).
pub fn parse_definition_json(id: &str, text: &str) -> Result<(Group, Vec<Problem>), Box<Problem>> {
    parse_text(id, id.to_string(), true, text, false)
}

fn parse_text(
    file_name: &str,
    id: String,
    is_json: bool,
    text: &str,
    check_id: bool,
) -> Result<(Group, Vec<Problem>), Box<Problem>> {
    let file_name = file_name.to_string();
    let file_at = Location {
        file: file_name.clone(),
        group: id.clone(),
        ..Default::default()
    };
    let raw: RawGroup = if is_json {
        serde_json::from_str(text).map_err(|e| {
            let at = Location {
                line: Some(e.line()),
                column: Some(e.column()),
                width: Some(1),
                ..file_at.clone()
            };
            Box::new(Problem::error(&at, format!("unparsable file: {e}")))
        })?
    } else {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            let at = file_at.at(e.span().map(|s| Position::of(text, s)));
            Box::new(Problem::error(&at, format!("unparsable file: {message}")))
        })?
    };
    // Where everything is written, in either format (empty if it can't be told).
    let root = match is_json {
        true => Node::json(text),
        false => Node::toml(text),
    }
    .unwrap_or_default();
    let source = Source { text, root: &root };

    let mut problems = Vec::new();
    if check_id && !is_valid_group_id(&id) {
        problems.push(Problem::error(
            &file_at,
            format!("invalid group id '{id}': file stems must match [a-z0-9][a-z0-9_-]{{0,63}}"),
        ));
    }
    unknown_keys(source, &file_at, &mut problems);
    let include = type_clauses(raw.include, "include", &file_at, source, &mut problems);
    let exclude = type_clauses(raw.exclude, "exclude", &file_at, source, &mut problems);
    let statics = Statics {
        include: raw.statics.include,
        exclude: raw.statics.exclude,
        include_from: raw.statics.include_from,
        exclude_from: raw.statics.exclude_from,
    };
    let group = Group {
        id,
        name: raw.name,
        description: raw.description,
        file: file_name,
        include,
        exclude,
        statics,
        definition_hash: format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))),
    };
    Ok((group, problems))
}
