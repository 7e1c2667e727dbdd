//! The file store and the admin key file, on a real file system.

use std::fs;

use crate::support::{mode, TempDir};
use tokengate::core::model::{
    AuthConfig, Client, Collection, Endpoint, FixedResponse, Profile, State, StoredToken,
};
use tokengate::store::{
    load_or_create_admin_key, AdminKeySource, FileStore, Store, StoreErrorKind,
};

fn sample_state() -> State {
    let token = tokengate::core::token::generate().unwrap();
    State {
        format: State::FORMAT,
        revision: 7,
        collections: vec![Collection {
            id: "c1".into(),
            name: "Orders".into(),
            path: "orders".into(),
            endpoints: vec![Endpoint {
                id: "e1".into(),
                name: "list".into(),
                method: "GET".into(),
                path: "/".into(),
                upstream: None,
                response: Some(FixedResponse {
                    status: 200,
                    headers: Default::default(),
                    body: serde_json::json!({"ok": true}),
                }),
                active: true,
            }],
        }],
        clients: vec![Client {
            id: "k1".into(),
            name: "Acme".into(),
            portal_key: "p".repeat(64),
            active: true,
        }],
        profiles: vec![Profile {
            id: "p1".into(),
            client_id: "k1".into(),
            name: "prod".into(),
            collections: vec!["c1".into()],
            auth: AuthConfig::Token,
            active: true,
            policy: None,
            ip_allow: vec!["10.0.0.0/8".into()],
            token: StoredToken {
                sha256: token.stored.sha256,
                last4: token.stored.last4,
            },
            previous_token: None,
            generation: 3,
        }],
    }
}

#[test]
fn missing_state_loads_as_none_and_the_data_dir_is_created_private() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("nested").join("data");
    let store = FileStore::open(&dir).unwrap();
    assert!(store.load().unwrap().is_none());
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn saved_state_loads_back_equal_with_mode_0600() {
    let tmp = TempDir::new();
    let store = FileStore::open(tmp.path()).unwrap();
    let state = sample_state();
    store.save(&state).unwrap();
    assert_eq!(store.load().unwrap(), Some(state.clone()));
    assert_eq!(mode(store.state_path()), 0o600);
    // A second store over the same directory (a restart) reads the same state.
    let again = FileStore::open(tmp.path()).unwrap();
    assert_eq!(again.load().unwrap(), Some(state.clone()));
    // Saving again replaces the file and leaves no temporary files behind.
    let mut next = state;
    next.revision += 1;
    store.save(&next).unwrap();
    assert_eq!(again.load().unwrap(), Some(next));
    let names: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["state.json".to_owned()]);
}

#[test]
fn leftover_temp_files_from_a_crash_are_removed_on_open() {
    let tmp = TempDir::new();
    let leftover = tmp.path().join(".tmp-state.json-deadbeef");
    fs::write(&leftover, b"{\"torn").unwrap();
    let store = FileStore::open(tmp.path()).unwrap();
    assert!(!leftover.exists());
    assert!(store.load().unwrap().is_none());
}

#[test]
fn corrupt_state_is_an_error_naming_the_file_never_an_empty_start() {
    let tmp = TempDir::new();
    let store = FileStore::open(tmp.path()).unwrap();
    for (content, kind) in [
        (
            &b"{\"format\":1,\"collections\":[{\"id\""[..],
            StoreErrorKind::Corrupt,
        ),
        (b"", StoreErrorKind::Corrupt),
        (b"not json", StoreErrorKind::Corrupt),
        (b"[1,2]", StoreErrorKind::Corrupt),
        (b"{\"format\":1,\"surprise\":1}", StoreErrorKind::Corrupt),
        (b"{\"format\":99}", StoreErrorKind::UnsupportedFormat),
    ] {
        fs::write(store.state_path(), content).unwrap();
        let err = store.load().unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.is_unreadable_document());
        let text = err.to_string();
        assert!(text.contains("state.json"), "{text}");
        assert!(text.contains("refuses to start"), "{text}");
    }
}

#[test]
fn admin_key_is_created_0600_on_first_start_and_reused_after() {
    let tmp = TempDir::new();
    let (key, source) = load_or_create_admin_key(tmp.path(), None).unwrap();
    let path = tmp.path().join("admin.key");
    assert_eq!(source, AdminKeySource::Created(path.clone()));
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).unwrap();
    let written = text.trim();
    assert_eq!(written.len(), 64);
    assert!(written.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(key.matches(written.as_bytes()));
    assert!(!key.matches(b"something else"));
    // Its Debug form does not show it.
    assert!(!format!("{key:?}").contains(written));

    let (again, source) = load_or_create_admin_key(tmp.path(), None).unwrap();
    assert_eq!(source, AdminKeySource::File(path.clone()));
    assert!(again.matches(written.as_bytes()));
    assert_eq!(fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn environment_admin_key_wins_and_writes_nothing() {
    let tmp = TempDir::new();
    let (key, source) =
        load_or_create_admin_key(tmp.path(), Some("from-the-environment".into())).unwrap();
    assert_eq!(source, AdminKeySource::Environment);
    assert!(key.matches(b"from-the-environment"));
    assert!(!tmp.path().join("admin.key").exists());
    // Blank means unset.
    let (_, source) = load_or_create_admin_key(tmp.path(), Some("  ".into())).unwrap();
    assert!(matches!(source, AdminKeySource::Created(_)));
}

#[test]
fn empty_admin_key_file_is_refused() {
    let tmp = TempDir::new();
    fs::write(tmp.path().join("admin.key"), "\n").unwrap();
    let err = load_or_create_admin_key(tmp.path(), None).unwrap_err();
    assert!(err.to_string().contains("admin.key"), "{err}");
}
