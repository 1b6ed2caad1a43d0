//! Where things are in a publish location: `LATEST`, `runs/<run-id>/` and the files in a
//! run folder; and reading the pointer. Reader, writer and catalog all stand on this.

use crate::location::Location;
use crate::{Error, Result};

/// The groups' portable bitmaps, one after another.
pub const BITMAPS_FILE: &str = "groups.bin";
/// The id dictionary, when the mapping is not the identity.
pub const DICTIONARY_FILE: &str = "ids.parquet";
/// The dictionary's perfect hash, when it has one.
pub const HASH_INDEX_FILE: &str = "ids.phf";
/// The pointer to the current run.
pub const LATEST: &str = "LATEST";
/// A run's manifest; a run folder without one is incomplete.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The run id `LATEST` names.
pub async fn latest_run_id(publish: &Location) -> Result<String> {
    let bytes = publish
        .join(LATEST)
        .read_if_exists()
        .await?
        .ok_or_else(|| Error::NothingPublished {
            url: publish.display.clone(),
        })?;
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    if text.is_empty() || text.contains('/') || text.len() > 200 {
        return Err(Error::invalid(
            &publish.display,
            "LATEST does not hold a run id",
        ));
    }
    Ok(text)
}
