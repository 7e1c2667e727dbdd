//! The embedded file store: the whole state as `<data-dir>/state.json`, replaced atomically.
//!
//! A save writes a temporary file in the same directory, fsyncs it, renames it over the old file
//! and fsyncs the directory, so that a crash at any point leaves either the old or the new state,
//! never a torn one. A state file that cannot be read is an error, never a reason to start empty:
//! starting empty would silently revoke every client's access.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{
    ensure_data_dir, write_atomically, Store, StoreError, StoreErrorKind, STATE_FILE, TEMP_PREFIX,
};
use crate::core::model::State;

/// The embedded store: `<data-dir>/state.json`.
#[derive(Debug)]
pub struct FileStore {
    /// The data directory.
    dir: PathBuf,
    /// `<dir>/state.json`.
    state_path: PathBuf,
}

impl FileStore {
    /// Opens the store in `data_dir`, creating the directory (mode 0700) if it is missing and
    /// removing temporary files left by a crash in the middle of a save.
    pub fn open(data_dir: impl Into<PathBuf>) -> Result<FileStore, StoreError> {
        let dir = data_dir.into();
        ensure_data_dir(&dir)?;
        remove_leftover_temp_files(&dir)?;
        let state_path = dir.join(STATE_FILE);
        Ok(FileStore { dir, state_path })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the state file.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }
}

impl Store for FileStore {
    fn load(&self) -> Result<Option<State>, StoreError> {
        let path = &self.state_path;
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(
                path,
                "cannot read the state file; tokengate refuses to start rather than start empty",
                e,
            )),
        };
        parse_state(path, &bytes).map(Some)
    }

    fn save(&self, state: &State) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| StoreError {
            kind: StoreErrorKind::Io,
            path: self.state_path.clone(),
            message: "cannot serialize the state".to_owned(),
            source: Some(Box::new(e)),
        })?;
        bytes.push(b'\n');
        write_atomically(&self.dir, &self.state_path, &bytes)
    }
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
fn remove_leftover_temp_files(dir: &Path) -> Result<(), StoreError> {
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
