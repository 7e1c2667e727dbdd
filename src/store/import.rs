//! The state file of earlier versions, `<data-dir>/state.json`: read once, imported into the
//! embedded database on the first start, then renamed (never deleted) so that it is kept as a
//! backup and never imported twice.
//!
//! A state file that cannot be read is an error, never a reason to start empty: starting empty
//! would silently revoke every client's access.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{StoreError, StoreErrorKind, TEMP_PREFIX};
use crate::core::model::State;

/// Name of the state file of earlier versions inside the data directory.
pub const STATE_FILE: &str = "state.json";

/// Reads `<dir>/state.json`: `Ok(None)` when there is none.
pub(crate) fn read_state_file(dir: &Path) -> Result<Option<State>, StoreError> {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::io(
                &path,
                "cannot read the state file to import it; tokengate refuses to start rather than start empty",
                e,
            ))
        }
    };
    parse_state(&path, &bytes).map(Some)
}

/// The name `state.json` is renamed to once imported: `state.json.imported-<unix seconds>`.
pub(crate) fn imported_name(unix_s: u64) -> String {
    format!("{STATE_FILE}.imported-{unix_s}")
}

/// Renames `<dir>/state.json` to `<dir>/<new_name>`; returns the new path.
pub(crate) fn rename_state_file(dir: &Path, new_name: &str) -> Result<PathBuf, StoreError> {
    let from = dir.join(STATE_FILE);
    let to = dir.join(new_name);
    fs::rename(&from, &to)
        .map_err(|e| StoreError::io(&from, "cannot rename the imported state file", e))?;
    super::sync_dir(dir)?;
    Ok(to)
}

/// Decodes a state document, refusing anything this build does not fully understand.
fn parse_state(path: &Path, bytes: &[u8]) -> Result<State, StoreError> {
    const REFUSE: &str = "tokengate refuses to start rather than start with an empty state; \
                          restore the file from a backup or move it aside";
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(StoreError::corrupt(
            path,
            format!("the state file is empty (a torn write?); {REFUSE}"),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        StoreError::corrupt(
            path,
            format!("the state file is not valid JSON ({e}); {REFUSE}"),
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(StoreError::corrupt(
            path,
            format!("the state file is not a JSON object; {REFUSE}"),
        ));
    };
    match object.get("format") {
        None => {}
        Some(format) if format.as_u64() == Some(u64::from(State::FORMAT)) => {}
        Some(format) => {
            return Err(StoreError {
                kind: StoreErrorKind::UnsupportedFormat,
                path: path.to_owned(),
                message: format!(
                "the state file has format {format}, but this build reads only format {}; {REFUSE}",
                State::FORMAT
            ),
                source: None,
            })
        }
    }
    serde_json::from_value(value).map_err(|e| {
        StoreError::corrupt(
            path,
            format!("the state file does not hold a valid state ({e}); {REFUSE}"),
        )
    })
}

/// Removes `.tmp-*` files: a crash between creating a temporary file and renaming it leaves one.
pub(crate) fn remove_leftover_temp_files(dir: &Path) -> Result<(), StoreError> {
    let entries =
        fs::read_dir(dir).map_err(|e| StoreError::io(dir, "cannot list the data directory", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            fs::remove_file(&path)
                .map_err(|e| StoreError::io(&path, "cannot remove a leftover temporary file", e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_documents_from_newer_builds_are_refused() {
        let err = parse_state(Path::new("s.json"), br#"{"format":2}"#).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::UnsupportedFormat);
        assert!(err.to_string().contains("format 2"), "{err}");
        let err = parse_state(Path::new("s.json"), br#"{"format":1,"extra":true}"#).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);
        let err = parse_state(Path::new("s.json"), b"[]").unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);
        let ok = parse_state(Path::new("s.json"), br#"{"format":1,"revision":3}"#).unwrap();
        assert_eq!(ok.revision, 3);
    }
}
